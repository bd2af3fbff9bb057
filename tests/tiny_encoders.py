"""Tiny random encoders of six Hugging Face families, built offline for `--base DIR` tests.

Each family gets a tokenizer of its own subword scheme, trained here with the `tokenizers`
library on generated news text (tests/news_posts.py) and wrapped in the family's
transformers tokenizer class (which adds the family's normaliser, pre-tokeniser and
special-token template), and a random model of the family's config class at tiny sizes
(hidden 32, 2 layers). Both are saved with `save_pretrained`, so each folder looks like
one from the hub: config.json, model.safetensors, tokenizer.json, tokenizer_config.json.

| family      | subword scheme                   | specials        |
|-------------|----------------------------------|-----------------|
| bert        | WordPiece ("##")                 | [CLS] … [SEP]   |
| distilbert  | WordPiece ("##")                 | [CLS] … [SEP]   |
| mpnet       | WordPiece ("##")                 | <s> … </s>      |
| roberta     | byte-level BPE ("Ġ")             | <s> … </s>      |
| xlm-roberta | SentencePiece Unigram ("▁")      | <s> … </s>      |
| deberta-v2  | SentencePiece Unigram ("▁")      | [CLS] … [SEP]   |

The session fixture `tiny_encoders` (registered in tests/conftest.py) builds all six once
per session in a temporary folder: about a second in all.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.news_posts import LABELS, long_post, post_texts

FAMILIES = ("bert", "distilbert", "mpnet", "roberta", "xlm-roberta", "deberta-v2")
HIDDEN, LAYERS, HEADS, FFN = 32, 2, 2, 64
MAX_POSITIONS = 160  # >= the default 128-token window + RoBERTa-style position offset
WORDPIECE = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
ROBERTA = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
DEBERTA = ["[PAD]", "[CLS]", "[SEP]", "[UNK]", "[MASK]"]


def corpus(n: int = 400, seed: int = 3) -> list[str]:
    """Generated news text to train the tokenizers on (mixed case, numbers, punctuation)."""
    rng = random.Random(seed)
    return [*post_texts(n, seed), *(long_post(rng, lab, 200) for lab in LABELS)]


def _wordpiece(texts: list[str], specials: list[str], vocab_size: int) -> dict[str, int]:
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers

    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.train_from_iterator(texts, trainers.WordPieceTrainer(vocab_size=vocab_size,
                                                             special_tokens=specials))
    return tok.get_vocab()


def _byte_bpe(texts: list[str], vocab_size: int) -> tuple[dict[str, int], list[tuple[str, str]]]:
    import json

    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.train_from_iterator(texts, trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=ROBERTA,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    model = json.loads(tok.to_str())["model"]
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in model["merges"]]
    return model["vocab"], merges  # type: ignore[return-value]


def _unigram(texts: list[str], specials: list[str], unk: str,
             vocab_size: int) -> list[tuple[str, float]]:
    import json

    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tok = Tokenizer(models.Unigram())
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.train_from_iterator(texts, trainers.UnigramTrainer(
        vocab_size=vocab_size, special_tokens=specials, unk_token=unk))
    return [(piece, float(score)) for piece, score in json.loads(tok.to_str())["model"]["vocab"]]


def tiny_tokenizer(family: str, texts: list[str]) -> object:
    """The family's transformers tokenizer over a vocabulary trained on `texts`."""
    import transformers as tf

    if family in ("bert", "distilbert"):
        cls = tf.BertTokenizer if family == "bert" else tf.DistilBertTokenizer
        return cls(vocab=_wordpiece(texts, WORDPIECE, 800))
    if family == "mpnet":
        vocab = _wordpiece(texts, [*WORDPIECE, "<s>", "</s>", "<pad>", "<mask>"], 800)
        return tf.MPNetTokenizer(vocab=vocab)
    if family == "roberta":
        vocab, merges = _byte_bpe(texts, 800)
        return tf.RobertaTokenizer(vocab=vocab, merges=merges)
    if family == "xlm-roberta":
        return tf.XLMRobertaTokenizer(vocab=_unigram(texts, ROBERTA, "<unk>", 500))
    if family == "deberta-v2":
        return tf.DebertaV2Tokenizer(vocab=_unigram(texts, DEBERTA, "[UNK]", 500))
    raise ValueError(f"unknown family {family!r}; one of {FAMILIES}")


def tiny_config(family: str, tokenizer: object) -> object:
    """The family's config at tiny sizes, its ids matching `tokenizer`'s."""
    import transformers as tf

    ids = {"vocab_size": len(tokenizer),  # type: ignore[arg-type]
           "pad_token_id": tokenizer.pad_token_id}  # type: ignore[attr-defined]
    if family == "distilbert":
        return tf.DistilBertConfig(dim=HIDDEN, n_layers=LAYERS, n_heads=HEADS, hidden_dim=FFN,
                                   max_position_embeddings=MAX_POSITIONS, **ids)
    sizes = {"hidden_size": HIDDEN, "num_hidden_layers": LAYERS, "num_attention_heads": HEADS,
             "intermediate_size": FFN, "max_position_embeddings": MAX_POSITIONS, **ids}
    if family in ("roberta", "xlm-roberta", "mpnet"):
        sizes |= {"bos_token_id": tokenizer.bos_token_id,  # type: ignore[attr-defined]
                  "eos_token_id": tokenizer.eos_token_id}  # type: ignore[attr-defined]
    config_class = {"bert": tf.BertConfig, "mpnet": tf.MPNetConfig, "roberta": tf.RobertaConfig,
                    "xlm-roberta": tf.XLMRobertaConfig, "deberta-v2": tf.DebertaV2Config}[family]
    return config_class(**sizes)


def build_tiny_encoder(family: str, folder: Path, texts: list[str] | None = None,
                       seed: int = 0) -> Path:
    """Write a tiny random `family` encoder with its tokenizer into `folder`; return it."""
    import torch
    from transformers import AutoModel

    tokenizer = tiny_tokenizer(family, texts or corpus())
    torch.manual_seed(seed)
    model = AutoModel.from_config(tiny_config(family, tokenizer))
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))  # type: ignore[attr-defined]
    return folder


def head_artifact(base_dir: Path, out: Path, *, name: str = "tiny",
                  version: str = "0.0.1") -> Path:
    """A head-mode artifact over the base in `base_dir` (a random head, no training): all
    that loading it needs."""
    import torch
    from safetensors.torch import save_file

    from docstream.model.artifact import HEAD_FILE, BaseModelRef, ModelManifest, write_manifest
    from docstream.model.classifier import TextClassifier, load_base_encoder
    from docstream.model.encoder import resolve_base

    base = resolve_base(base_dir)
    torch.manual_seed(0)
    module = TextClassifier(load_base_encoder(base=base), n_labels=2)
    out.mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in module.head.state_dict().items()},
              str(out / HEAD_FILE))
    write_manifest(out, ModelManifest(name=name, version=version, mode="head",
                                      labels=["a", "b"], base_model=BaseModelRef.of(base)))
    return out


@pytest.fixture(scope="session")
def tiny_encoders(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """tiny_encoders(family) -> the folder of a tiny random encoder of that family, built
    once per session (all six: about a second)."""
    root = tmp_path_factory.mktemp("tiny-encoders")
    texts = corpus()
    built: dict[str, Path] = {}

    def get(family: str) -> Path:
        if family not in built:
            built[family] = build_tiny_encoder(family, root / family, texts)
        return built[family]

    return get
