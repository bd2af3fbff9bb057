"""One deterministic JSON Lines file of fuzzed lines mixed with good posts, for the batch fuzz
test (tests/pipelines/test_fuzz_file.py).

`fuzz_file(path, seed)` writes the file and returns a `FuzzFile`: the raw lines as written,
which generator made each, the ids of the good posts, and the inputs the file source should
yield (`expected_inputs`). Everything comes from one seeded `random.Random`: the same seed
gives the same bytes.

A line cannot hold b"\\n" (it would be two lines), so generators replace it; b"\\r" is kept
(inside a line it is data; at the end of a line the file source strips it, as it does for
CRLF files). Blank and whitespace-only lines are written too: the file source skips them,
they are not inputs, and `expected_inputs` leaves them out.

Generators (`kind` of each line):

- `good`: 200 posts from tests/news_posts.py, ids `good-0000`..., some with title, source,
  kind, lang, created_at; line 1 is one of them behind a UTF-8 byte order mark;
- `bytes`: arbitrary bytes; `mutated`: valid posts with byte flips, truncations, insertions,
  deletions and splices; `nesting`: arrays/objects nested 1 to 50,000 deep, around the cap of
  64 in particular; `number`: huge and odd numbers; `nan`: NaN/Infinity; `category`: a
  character of every Unicode general category (Cs and Cn included) in id/title/source/text,
  escaped or raw; `special`: escaped lone surrogates and NUL (\\u0000) in every stored field,
  raw NUL bytes; `control`: control characters, escaped or raw; `duplicate`: repeated keys;
  `oversize`: fields at and over their limits, lines over 1 MiB; `utf8`: invalid UTF-8;
  `bom`: byte order marks past line 1; `timestamp`: odd created_at values; `cr`: carriage
  returns; `corpus`: every tests/fuzz_corpus case that holds no newline, as it is;
  `blank`: blank or whitespace-only lines (not inputs).
"""

from __future__ import annotations

import json
import random
import sys
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from tests.news_posts import post_texts

CORPUS = Path(__file__).resolve().parent / "fuzz_corpus"
MAX_PAYLOAD_BYTES = 1_048_576  # pipelines/parse.py; restated so that a change is noticed
MAX_TEXT_CHARS = 100_000
MAX_DEPTH = 64
UTF8_BOM = b"\xef\xbb\xbf"
ASCII_SPACE = b" \t\r\n\x0b\x0c"  # what bytes.strip() removes: a line of only these is blank
CATEGORIES = ("Lu", "Ll", "Lt", "Lm", "Lo", "Mn", "Mc", "Me", "Nd", "Nl", "No", "Pc", "Pd",
              "Ps", "Pe", "Pi", "Pf", "Po", "Sm", "Sc", "Sk", "So", "Zs", "Zl", "Zp", "Cc",
              "Cf", "Cs", "Co", "Cn")
N_GOOD = 200
# broken numeric entities naming surrogates (' #55296;'): once dead-lettered by a tokenizer error
BROKEN_ENTITY_SURROGATE = "cleaning-entity"
MIN_FUZZ = 1000


@dataclass
class FuzzFile:
    path: Path
    lines: list[bytes]  # as written, without the b"\n"; line N is lines[N - 1]
    kinds: list[str]  # the generator of each line
    good_ids: list[str]
    inputs: dict[int, bytes] = field(default_factory=dict)  # line number -> payload

    def composition(self) -> Counter[str]:
        return Counter(self.kinds)

    def input_kinds(self) -> Counter[str]:
        return Counter(self.kinds[n - 1] for n in self.inputs)


def expected_inputs(lines: list[bytes]) -> dict[int, bytes]:
    """What the file source yields, by its contract (pipelines/file_source.py): a line over
    MAX_PAYLOAD_BYTES is cut at MAX_PAYLOAD_BYTES + 1 bytes; one UTF-8 BOM at the start of the
    file is dropped; a trailing CR/LF run is stripped; blank lines are skipped."""
    out: dict[int, bytes] = {}
    for number, line in enumerate(lines, start=1):
        body = line[: MAX_PAYLOAD_BYTES + 1] if len(line) > MAX_PAYLOAD_BYTES else line
        if number == 1 and body.startswith(UTF8_BOM) and len(line) < MAX_PAYLOAD_BYTES:
            body = body[len(UTF8_BOM):]
        body = body.rstrip(b"\r\n")
        if body.strip(ASCII_SPACE):
            out[number] = body
    return out


@cache
def chars_by_category() -> dict[str, list[str]]:
    """Every code point grouped by general category (one scan, ~0.3 s, cached)."""
    groups: dict[str, list[str]] = {c: [] for c in CATEGORIES}
    for cp in range(sys.maxunicode + 1):
        groups[unicodedata.category(chr(cp))].append(chr(cp))
    return groups


def encode(obj: Any, ascii_only: bool = True) -> bytes:
    """JSON bytes; with `ascii_only` false, lone surrogates go out raw (invalid UTF-8)."""
    return json.dumps(obj, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")


def one_line(data: bytes) -> bytes:
    return data.replace(b"\n", b" ")


class _Gen:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.n = 0
        self.texts = post_texts(400, seed + 1)

    def uid(self, prefix: str) -> str:
        self.n += 1
        return f"{prefix}-{self.n:05d}"

    def text(self) -> str:
        return self.rng.choice(self.texts)

    def post(self, prefix: str, **extra: Any) -> dict[str, Any]:
        return {"id": self.uid(prefix), "text": self.text(), **extra}

    # -- generators: each returns a list of (kind, line) ------------------------------------

    def arbitrary_bytes(self, n: int) -> list[tuple[str, bytes]]:
        out = []
        for _ in range(n):
            size = self.rng.choice([0, 1, 2, 5, 20, 100, 400, 2000])
            data = self.rng.randbytes(self.rng.randint(0, size))
            # a newline ends the line: drop it, or replace it (\r keeps CR in play)
            data = data.replace(b"\n", self.rng.choice([b"", b"\r", b"x"]))
            out.append(("bytes", data or b"\x01"))
        return out

    def mutated(self, n: int) -> list[tuple[str, bytes]]:
        rng = self.rng
        tokens = [b"\\u0000", b"\\ud800", b"\\udfff", b"[", b"{", b"}", b'"', b"\\", b"1e999",
                  b"NaN", b"-Infinity", UTF8_BOM, b"\x00", b"\xff", b"\xed\xa0\x80", b"\r",
                  b'"id": "dup", ', b", ", b":"]
        out = []
        for _ in range(n):
            post = self.post("mut")
            if rng.random() < 0.5:
                post["title"] = rng.choice(["Morning brief", "Ünïcödé", "😀 smile", ""])
            if rng.random() < 0.4:
                post["source"] = rng.choice(["wire", "@acct", "feed/β"])
            if rng.random() < 0.3:
                post["metadata"] = {"n": rng.randint(-10**6, 10**6), "tags": ["a", "b"],
                                    "x": {"y": [1.5, None, True]}}
            data = bytearray(encode(post, rng.random() < 0.5))
            for _ in range(rng.randint(1, 4)):
                op = rng.choice(["flip", "truncate", "insert", "delete", "splice"])
                at = rng.randint(0, len(data))
                if op == "flip" and data:
                    data[min(at, len(data) - 1)] = rng.randrange(256)
                elif op == "truncate":
                    del data[at:]
                elif op == "insert":
                    data[at:at] = (rng.randbytes(rng.randint(1, 8)) if rng.random() < 0.5
                                   else rng.choice(tokens))
                elif op == "delete":
                    del data[at:at + rng.randint(1, 8)]
                else:  # splice: repeat a slice (duplicate keys, doubled objects)
                    end = rng.randint(at, len(data))
                    data[at:at] = data[at:end]
            out.append(("mutated", one_line(bytes(data)) or b"}"))
        return out

    def nesting(self) -> list[tuple[str, bytes]]:
        out = []
        depths = [1, 2, 30, 61, 62, 63, 64, 65, 66, 100, 1000, 5000, 50_000]
        for depth in depths:
            for opener, closer in ((b"[", b"]"), (b'{"a":', b"}"), (b'{"a": [', b"]}")):
                for where in ("text", "metadata", "top"):
                    closed = self.rng.random() < 0.8
                    nest = opener * depth + b"1" + (closer * depth if closed else b"")
                    uid = self.uid("nest").encode()
                    line = {"text": b'{"id": "' + uid + b'", "text": ' + nest + b"}",
                            "metadata": b'{"id": "' + uid + b'", "text": "x", "metadata": '
                                        b'{"k": ' + nest + b"}}",
                            "top": nest}[where]
                    out.append(("nesting", line))
        # just under and at the cap, valid: metadata (1) + its value nesting 62/63 levels
        for levels in (62, 63):
            value: Any = 1
            for _ in range(levels - 1):
                value = [value]
            out.append(("nesting", encode(self.post("nest", metadata={"deep": value}))))
        # brackets inside strings do not count
        out.append(("nesting", encode(self.post("nest", title="[" * 5000 + "{" * 5000))))
        return out

    def numbers(self) -> list[tuple[str, bytes]]:
        out = []
        literals = ["1" * 100, "1" * 101, "-" + "9" * 99, "-" + "9" * 100, "0." + "3" * 98,
                    "0." + "3" * 99, "1e308", "1.7976931348623157e308", "1.8e308", "-1.8e308",
                    "1e309", "1e-400", "-0", "0.0e0", "1E+2", "4" * 5000, "-" + "7" * 6000,
                    "1e" + "9" * 8, "123E+" + "7" * 200, "9" * 4300, "9" * 4301, "0" * 5,
                    "1.", ".5", "+1", "0x10", "1_000"]
        for lit in literals:
            for where in ("metadata", "created_at", "extra", "id"):
                uid = self.uid("num")
                members = {"metadata": f'"id": "{uid}", "metadata": {{"n": {lit}}}',
                           "created_at": f'"id": "{uid}", "created_at": {lit}',
                           "extra": f'"id": "{uid}", "n": [{lit}]',
                           "id": f'"id": {lit}'}[where]
                out.append(("number", f'{{"text": "x", {members}}}'.encode()))
        return out

    def nan(self) -> list[tuple[str, bytes]]:
        out = []
        for lit in ("NaN", "Infinity", "-Infinity", "nan", "inf", "-NaN", "+Infinity"):
            uid = self.uid("nan")
            out += [("nan", f'{{"id": "{uid}", "text": "x", "n": {lit}}}'.encode()),
                    ("nan", f'{{"id": "{uid}b", "text": "x", "metadata": {{"v": [{lit}]}}}}'
                            .encode()),
                    ("nan", lit.encode())]
        out.append(("nan", encode(self.post("nan", metadata={"s": "NaN"}))))  # a string: fine
        return out

    def categories(self) -> list[tuple[str, bytes]]:
        """A character of every general category in id, title, source and text; escaped
        (ensure_ascii) or raw (lone surrogates raw are invalid UTF-8)."""
        groups = chars_by_category()
        out = []
        for cat in CATEGORIES:
            for name in ("id", "title", "source", "text"):
                for ascii_only in (True, False):
                    chars = "".join(self.rng.choice(groups[cat])
                                    for _ in range(self.rng.randint(1, 3)))
                    post = self.post("cat")
                    post[name] = f"{post[name][:20]}{chars}" if name in ("id", "text") \
                        else f"s{chars}"
                    out.append(("category", one_line(encode(post, ascii_only))))
        extremes = ["\ufffe", "\uffff", "\U0010ffff", "\ue000", "\U000f0000", "\u2028",
                    "\u2029", "\u200b", "\ufeff", "\u00ad", "\U0001f600", "\u0301"]
        for ch in extremes:
            for name in ("id", "source", "title", "text"):
                post = self.post("ext")
                post[name] = f"a{ch}b"
                out.append(("category", encode(post, self.rng.random() < 0.5)))
        return out

    def special(self) -> list[tuple[str, bytes]]:
        """Escaped lone surrogates and NUL in every stored field; a valid pair; raw NUL."""
        out = []
        for esc in ("\\ud800", "\\udfff", "\\udbff", "\\ude00\\ud83d", "\\u0000",
                    "\\ud83d\\ude00"):
            for name in ("id", "title", "source", "text", "lang", "kind"):
                uid = self.uid("sp")
                base = {"id": uid, "text": "x", name: "PLACEHOLDER"}
                line = json.dumps(base).replace("PLACEHOLDER", f"a{esc}b").encode()
                out.append(("special", line))
        uid = self.uid("sp")
        out.append(("special", f'{{"id": "{uid}", "text": "x", "metadata": {{"\\ud800": 1}}}}'
                               .encode()))
        out.append(("special", f'{{"id": "{uid}b", "text": "x", "metadata": {{"\\u0000": '
                               '"\\u0000"}}'.encode()))
        for name in ("id", "text", "title", "source"):
            uid = self.uid("sp")
            out.append(("special", encode({"id": uid, "text": "x", name: "a"}).replace(
                b'"a"', b'"a\x00b"')))
        return out

    def controls(self) -> list[tuple[str, bytes]]:
        out = []
        cc = [chr(c) for c in (*range(0x20), *range(0x7F, 0xA0))]
        for ch in cc:
            name = self.rng.choice(["id", "source", "lang", "text", "title"])
            post = self.post("cc")
            post[name] = f"a{ch}b"
            if self.rng.random() < 0.5:
                data = encode(post)  # escaped: \u0001
            else:  # raw in the string: JSON refuses raw U+0000-U+001F, allows U+007F-U+009F
                data = json.dumps(post, ensure_ascii=False).replace(
                    json.dumps(post[name], ensure_ascii=False),
                    '"' + post[name] + '"').encode("utf-8")
            out.append(("control", one_line(data)))
        post = self.post("cc", title="\x1b[31mred\x1b[0m")
        post["text"] = "bell\x07 tab\t cr\r ff\f " + post["text"]
        out.append(("control", encode(post)))
        return out

    def duplicates(self) -> list[tuple[str, bytes]]:
        out = []
        keys = ("id", "text", "title", "source", "kind", "lang", "created_at", "metadata", "k",
                "")
        for _ in range(30):
            picked = [self.rng.choice(keys) for _ in range(self.rng.randint(2, 5))]
            members = ", ".join(f'"{k}": "v{i}"' for i, k in enumerate(picked))
            uid = self.uid("dup")
            line = (f'{{"id": "{uid}", "text": "x", "metadata": {{{members}}}}}'
                    if self.rng.random() < 0.5 else f'{{{members}, "id": "{uid}", "text": "x"}}')
            out.append(("duplicate", line.encode()))
        out.append(("duplicate", b'{"id": "a", "text": "x", "id": "a"}'))
        out.append(("duplicate", b'{"id": "d\\u0041", "text": "x", "id": "dA"}'))  # equal once read
        return out

    def oversize(self) -> list[tuple[str, bytes]]:
        out = []
        for name, limit, ch in (("text", MAX_TEXT_CHARS, "w"), ("title", MAX_TEXT_CHARS, "é"),
                                ("id", 256, "i"), ("source", 256, "😀"), ("lang", 32, "e")):
            for delta in (0, 1):
                post = self.post("big")
                value = ch * (limit + delta)
                if name == "id":
                    value = post["id"] + value[len(post["id"]):]
                post[name] = value
                out.append(("oversize", encode(post, ascii_only=False)))
        # text of 100,000 characters of real words (the model path, chunked)
        words = " ".join(self.texts)
        text = (words * (MAX_TEXT_CHARS // len(words) + 1))[:MAX_TEXT_CHARS]
        out.append(("oversize", encode(self.post("big") | {"text": text})))
        # whole lines around the 1 MiB payload limit
        head = b'{"id": "%s", "text": "x", "metadata": {"pad": "'
        tail = b'"}}'
        for size in (MAX_PAYLOAD_BYTES - 1, MAX_PAYLOAD_BYTES, MAX_PAYLOAD_BYTES + 1,
                     MAX_PAYLOAD_BYTES + 4096, 2 * MAX_PAYLOAD_BYTES + 17):
            h = head % self.uid("big").encode()
            out.append(("oversize", h + b"p" * (size - len(h) - len(tail)) + tail))
        # over 1 MiB: brackets (the depth scan's worst case), multibyte text, raw bytes
        out.append(("oversize", b"[" * (MAX_PAYLOAD_BYTES + 10)))
        out.append(("oversize", encode(self.post("big") | {"text": "ж" * 600_000},
                                       ascii_only=False)))
        out.append(("oversize", one_line(self.rng.randbytes(MAX_PAYLOAD_BYTES + 100))))
        # a CR exactly where the cut falls
        h = head % self.uid("big").encode()
        out.append(("oversize", h + b"q" * (MAX_PAYLOAD_BYTES - len(h)) + b"\r" + tail))
        return out

    def invalid_utf8(self) -> list[tuple[str, bytes]]:
        bad = [b"\xc0\xaf", b"\xe0\x80\xaf", b"\xc3", b"\xed\xa0\x80", b"\xed\xbf\xbf",
               b"\xff", b"\xfe", b"\x80", b"\xbf\xbf", b"\xf4\x90\x80\x80", b"\xf8\x88\x80\x80",
               b"\xe2\x82", b"\xf0\x9f\x98"]
        out = []
        for seq in bad:
            for where in ("id", "text", "key", "end"):
                uid = self.uid("u8").encode()
                line = {"id": b'{"id": "' + uid + seq + b'", "text": "x"}',
                        "text": b'{"id": "' + uid + b'", "text": "caf' + seq + b'"}',
                        "key": b'{"id": "' + uid + b'", "text": "x", "' + seq + b'": 1}',
                        "end": b'{"id": "' + uid + b'", "text": "x"}' + seq}[where]
                out.append(("utf8", line))
        return out

    def boms(self) -> list[tuple[str, bytes]]:
        out = []
        for bom in (UTF8_BOM, UTF8_BOM * 2, b"\xff\xfe", b"\xfe\xff"):
            out.append(("bom", bom + encode(self.post("bom"))))
        post = self.post("bom")
        out.append(("bom", b"\xff\xfe" + json.dumps(post).encode("utf-16-le").replace(
            b"\n", b" ")))
        out.append(("bom", b"\xfe\xff" + json.dumps(post).encode("utf-16-be").replace(
            b"\n", b" ")))
        out.append(("bom", encode(self.post("bom")).replace(b'"text"', UTF8_BOM + b'"text"')))
        out.append(("bom", encode(self.post("bom", title="\ufeffzero width"), False)))
        return out

    def timestamps(self) -> list[tuple[str, bytes]]:
        values: list[Any] = [
            "2026-11-20T09:15:00Z", "2026-11-20T09:15:00", "2026-11-20", "0001-01-01T00:00:00Z",
            "0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", "9999-12-31T23:59:59Z",
            "2026-02-30T00:00:00Z", "2026-11-20T24:00:00Z", "2026-11-20T09:15:00.123456789Z",
            "yesterday", "", 0, -1, 1e10, -62135596800, 253402300799, 253402300800, 1e300,
            "1e10", True, None, [], {},
        ]
        return [("timestamp", encode(self.post("ts", created_at=v))) for v in values]

    def carriage_returns(self) -> list[tuple[str, bytes]]:
        return [
            ("cr", encode(self.post("cr")) + b"\r"),  # CRLF line
            ("cr", encode(self.post("cr")) + b"\r\r\r"),
            ("cr", encode(self.post("cr")).replace(b", ", b",\r ")),  # CR as JSON whitespace
            ("cr", encode(self.post("cr")).replace(b'"text": "', b'"text": "\r')),  # raw: invalid
            ("cr", b"\r" + encode(self.post("cr"))),
            ("cr", b"\rx"),
        ]

    def cleaning(self) -> list[tuple[str, bytes]]:
        """Texts that exercise preprocessing (preprocess/clean.py, the tokenizer): HTML and
        entities, feeds' broken entities (' #36;'), social conventions, texts of one Unicode
        category only, texts that clean to nothing or to no wordpiece."""
        groups = chars_by_category()
        texts = ["<p>Big&nbsp;win</p>", "<script>x</script>", "&#0;", "&#xd800;", "&amp;" * 50,
                 " #36; rally", " #00;", " #99999;", " #65534;", "@" * 100_000, "#" * 50_000,
                 "@bob #WorldCup https://www.bbc.co.uk/x", "http://" + "a" * 5000, "\u0301" * 1000,
                 "\ufeff\u200b\u2028", " \t\r ", "\u00a0\u3000", "x\u0301" * 2000]
        texts += ["".join(self.rng.choice(groups[cat]) for _ in range(self.rng.randint(1, 40)))
                  for cat in CATEGORIES]
        out = []
        for text in texts:
            post = self.post("clean", kind=self.rng.choice(["news", "social"]))
            post["text"] = text
            out.append(("cleaning", one_line(encode(post, self.rng.random() < 0.5))))
        for text in ("a #55296; b", "x #56320;", "#55357;#56832;"):
            out.append((BROKEN_ENTITY_SURROGATE, encode(self.post("clean", text=text))))
        return out

    def blanks(self) -> list[tuple[str, bytes]]:
        options = [b"", b" ", b"\t", b"\r", b" \t \r", b"\x0b", b"\x0c", b"   \r\r"]
        return [("blank", self.rng.choice(options)) for _ in range(30)]


def corpus_lines() -> list[tuple[str, bytes]]:
    """Every corpus case that fits on one line, as it is (a case with b"\\n" is left out)."""
    return [("corpus", data) for name in sorted(json.loads(
        (CORPUS / "manifest.json").read_text(encoding="utf-8")))
        if b"\n" not in (data := (CORPUS / name).read_bytes())]


def good_posts(seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    posts = []
    for i, text in enumerate(post_texts(N_GOOD, seed)):
        post: dict[str, Any] = {"id": f"good-{i:04d}", "text": text}
        if rng.random() < 0.5:
            post["title"] = text.split(".")[0][:80]
        if rng.random() < 0.3:
            post["source"] = rng.choice(["wire", "@newsdesk", "feed-β"])
        if rng.random() < 0.3:
            post["kind"] = rng.choice(["news", "social"])
            post["lang"] = "en"
            post["created_at"] = f"2026-11-{rng.randint(1, 30):02d}T09:15:00Z"
        posts.append(post)
    return posts


def fuzz_file(path: Path, seed: int = 2026) -> FuzzFile:
    """Write the file: a good post behind a UTF-8 BOM on line 1, then the good posts and the
    fuzzed lines shuffled together; at least MIN_FUZZ fuzzed lines that are inputs."""
    gen = _Gen(seed)
    fuzz: list[tuple[str, bytes]] = [
        *gen.nesting(), *gen.numbers(), *gen.nan(), *gen.categories(), *gen.special(),
        *gen.controls(), *gen.duplicates(), *gen.oversize(), *gen.invalid_utf8(), *gen.boms(),
        *gen.timestamps(), *gen.carriage_returns(), *gen.cleaning(), *corpus_lines(),
        *gen.blanks(),
    ]
    fuzz += gen.arbitrary_bytes(150)
    # mutated posts tops the count up so that MIN_FUZZ fuzzed lines are inputs
    n_inputs = len(expected_inputs([line for _, line in fuzz]))
    fuzz += gen.mutated(max(250, MIN_FUZZ - n_inputs + 50))
    good = good_posts(seed)
    rest: list[tuple[str, bytes]] = fuzz + [("good", encode(p, False)) for p in good[1:]]
    gen.rng.shuffle(rest)
    rows = [("good", UTF8_BOM + encode(good[0], False)), *rest]
    for _, line in rows:
        assert b"\n" not in line
    lines = [line for _, line in rows]
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    out = FuzzFile(path=path, lines=lines, kinds=[k for k, _ in rows],
                   good_ids=[p["id"] for p in good], inputs=expected_inputs(lines))
    fuzz_inputs = sum(n for k, n in out.input_kinds().items() if k != "good")
    assert fuzz_inputs >= MIN_FUZZ, fuzz_inputs
    return out
