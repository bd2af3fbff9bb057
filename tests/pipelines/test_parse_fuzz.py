"""Property tests: `parse_raw` never raises, whatever the bytes, and never lets through a post
the store could not hold; plus the seed corpus of every input that ever crashed it.

The property, for every generated payload: `parse_raw` returns exactly one `ParsedItem` or
`FailedRecord`; a dead letter has a known reason code (never `internal_error`), a readable
error, and storable strings; a parsed post's strings encode as UTF-8 without NUL (what
PostgreSQL accepts) and its id, source and lang hold no control character; the outcome pickles
(Beam moves it between stages).

Generators: arbitrary bytes; valid posts mutated (byte flips, truncation, insertion, deletion,
splices); deep nesting; huge and odd numbers; strings from every Unicode category, surrogates
(Cs) included, escaped (`\\ud800`) and raw (invalid UTF-8); control characters; duplicate keys;
fields near and over their size limits; byte order marks.

Budget: all tests here together in under 15 s on the 2-core development machine. Measured:
the tests themselves ~5 s; `pytest tests/pipelines/test_parse_fuzz.py` alone 11-14 s of wall
time, ~6 s of it collection (importing Beam, paid once per pytest session). Runs are
derandomized, so they are reproducible, and use no example database.
To hunt for new failures, run them longer and random: `DOCSTREAM_FUZZ_SCALE=20 .venv/bin/python
-m pytest -q tests/pipelines/test_parse_fuzz.py`; add what it finds to tests/fuzz_corpus/.
"""

from __future__ import annotations

import json
import os
import pickle
import sys
import unicodedata
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from docstream.pipelines.json_guard import MAX_DEPTH, MAX_NUMBER_CHARS, nesting_depth
from docstream.pipelines.parse import MAX_PAYLOAD_BYTES, parse_raw
from docstream.pipelines.records import ParsedItem, RawInput
from docstream.schemas.envelope import FailedRecord
from docstream.schemas.position import InputPosition
from docstream.schemas.post import MAX_ID_CHARS, MAX_TEXT_CHARS

CORPUS = Path(__file__).resolve().parents[1] / "fuzz_corpus"
POS = InputPosition(kind="file", file="x.jsonl", line=1)
REASONS = {
    "decode": {"oversize", "binary", "invalid_utf8"},
    "parse": {"invalid_json", "too_deep", "number_too_large", "duplicate_key"},
    "validate": {"schema", "empty_text", "oversize", "forbidden_character"},
}
FIELDS = ("id", "text", "title", "source", "kind", "lang", "created_at", "metadata")


SCALE = int(os.environ.get("DOCSTREAM_FUZZ_SCALE", "1"))


def fuzz(max_examples: int) -> Any:
    """Derandomized and bounded by default; DOCSTREAM_FUZZ_SCALE=N: N times the examples, random."""
    return settings(derandomize=SCALE == 1, deadline=None, max_examples=max_examples * SCALE,
                    database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def storable(value: str, *, key: bool) -> bool:
    """What PostgreSQL accepts as text (UTF-8, no NUL); keys also no control character."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    if key:
        return not any(unicodedata.category(c) == "Cc" for c in value)
    return "\x00" not in value


def check(payload: bytes) -> ParsedItem | FailedRecord:
    """The property. Returns the outcome for further, test-specific checks."""
    out = parse_raw(RawInput(POS, payload))
    assert isinstance(out, ParsedItem | FailedRecord), type(out)
    if isinstance(out, FailedRecord):
        d = out.dead_letter
        assert d.reason in REASONS.get(d.stage, ()), (d.stage, d.reason, d.error)
        assert d.error.strip() and storable(d.error, key=False), d.error
        assert d.doc_id is None or storable(d.doc_id, key=True)
        assert d.source is None or storable(d.source, key=True)
        assert d.payload == payload[: len(d.payload)]
    else:
        post = out.post
        for name in ("id", "source", "lang", "kind"):
            value = getattr(post, name)
            assert value is None or storable(value, key=True), (name, value)
        for name in ("text", "title"):
            value = getattr(post, name)
            assert value is None or storable(value, key=False), (name, value)
    pickle.loads(pickle.dumps(out))
    return out


# ------------------------------------------------------------------------- the seed corpus

MANIFEST: dict[str, Any] = json.loads((CORPUS / "manifest.json").read_text(encoding="utf-8"))


def test_corpus_manifest_lists_every_file() -> None:
    files = {p.name for p in CORPUS.iterdir() if p.is_file() and not p.name.startswith(".")}
    assert files - {"manifest.json", "README.md"} == set(MANIFEST)


@pytest.mark.parametrize("name", sorted(MANIFEST))
def test_corpus_case(name: str) -> None:
    out = check((CORPUS / name).read_bytes())
    want = MANIFEST[name]
    if want == "ok":
        assert isinstance(out, ParsedItem), out
    else:
        assert isinstance(out, FailedRecord), out
        got = {"stage": out.dead_letter.stage, "reason": out.dead_letter.reason}
        assert got == want, out.dead_letter.error


def test_corpus_outcomes_are_written_alike_by_sqlite_and_postgres(db_url: str) -> None:
    """What parse_raw lets through, and its dead letters, both stores hold as they are: none
    is refused by the database (which the writer would turn into a stage-"store" dead letter).
    The NUL and surrogate rules are PostgreSQL's, and SQLite gets the same."""
    from sqlalchemy import func, select

    from docstream.schemas.classification import Classification, ModelRef
    from docstream.schemas.envelope import ResultRecord, WriteBatch
    from docstream.store.engine import make_engine
    from docstream.store.migrate import upgrade
    from docstream.store.tables import AuditRow
    from docstream.store.writer import StoreWriter

    engine = make_engine(db_url)
    upgrade(engine)
    writer = StoreWriter(engine)
    ref = ModelRef(name="fuzz", version="1", weights_sha256="0" * 64)
    want: dict[tuple[str, str | None], int] = {}
    try:
        for name in sorted(MANIFEST):
            pos = InputPosition(kind="file", file=name, line=1)
            out = parse_raw(RawInput(pos, (CORPUS / name).read_bytes()))
            if isinstance(out, FailedRecord):
                batch = WriteBatch(run_id="fuzz", failures=[out])
            else:
                post = out.post
                batch = WriteBatch(run_id="fuzz", results=[ResultRecord(
                    result=Classification(doc_id=post.id, source=post.source_key, label="x",
                                          score=0.5, scores={"x": 0.5}, model=ref),
                    position=pos, input_sha256=out.sha256, kind=post.kind, title=post.title,
                    created_at=post.created_at)])
            writer.write(batch)  # one batch each: a refusal names its case
            key = (("dead_letter", out.dead_letter.stage) if isinstance(out, FailedRecord)
                   else ("classified", None))
            want[key] = want.get(key, 0) + 1
        audit = AuditRow.__table__
        with engine.connect() as conn:
            got = dict(((o, st), n) for o, st, n in conn.execute(
                select(audit.c.outcome, audit.c.stage, func.count())
                .group_by(audit.c.outcome, audit.c.stage)))
    finally:
        engine.dispose()
    assert got == want


def test_deep_nesting_is_refused_even_with_a_raised_recursion_limit() -> None:
    """The depth pre-scan runs before json: a raised limit must not let the C parser recurse
    (it could overflow the C stack)."""
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(200_000)
    try:
        out = check(b'{"id": "d", "text": ' + b"[" * 100_000 + b"]" * 100_000 + b"}")
    finally:
        sys.setrecursionlimit(old)
    assert isinstance(out, FailedRecord) and out.dead_letter.reason == "too_deep"


# ------------------------------------------------------------------------------ strategies

# Every Unicode category, surrogates (Cs) included: hypothesis leaves them out by default.
any_char = st.characters(exclude_categories=())
any_text = st.text(any_char, max_size=40)
controls = st.text(st.characters(categories=["Cc"]), min_size=1, max_size=5)
json_scalars = (st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
                | any_text)
json_values = st.recursive(json_scalars, lambda kids: st.lists(kids, max_size=4)
                           | st.dictionaries(any_text, kids, max_size=4), max_leaves=12)
field_values = st.one_of(
    any_text, json_values, controls, st.sampled_from(["news", "social", "", " ", "\x00"]),
    st.sampled_from(["2026-11-20T09:15:00Z", "yesterday", "9999-12-31T23:59:59+14:00"]),
)
posts = st.dictionaries(st.sampled_from(FIELDS), field_values, max_size=len(FIELDS))
valid_posts = st.fixed_dictionaries(
    {"id": st.text(st.characters(categories=["L", "N"]), min_size=1, max_size=12),
     "text": st.text(st.characters(categories=["L", "N", "P", "Zs"]), min_size=1, max_size=60)},
    optional={"title": st.text(max_size=20), "source": st.sampled_from(["wire", "@acct"]),
              "kind": st.sampled_from(["news", "social"]), "lang": st.just("en"),
              "created_at": st.just("2026-11-20T09:15:00Z"),
              "metadata": st.dictionaries(st.text(max_size=5), json_scalars, max_size=3)},
)


def encode(obj: Any, ascii_only: bool) -> bytes:
    """JSON bytes; with `ascii_only` false, lone surrogates go out raw (invalid UTF-8)."""
    return json.dumps(obj, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(encode(draw(valid_posts), draw(st.booleans())))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "truncate", "insert", "delete", "splice"]))
        at = draw(st.integers(0, len(data)))
        if op == "flip" and data:
            data[min(at, len(data) - 1)] = draw(st.integers(0, 255))
        elif op == "truncate":
            del data[at:]
        elif op == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8)
                               | st.sampled_from([b"\\u0000", b"\\ud800", b"[", b"{", b'"',
                                                  b"\\", b"1e999", b"NaN", b"\xef\xbb\xbf"]))
        elif op == "delete":
            del data[at:at + draw(st.integers(1, 8))]
        else:  # splice: repeat a slice of the document (duplicate keys, doubled objects)
            end = draw(st.integers(at, len(data)))
            data[at:at] = data[at:end]
    return bytes(data)


# --------------------------------------------------------------------------------- properties


@fuzz(300)
@given(st.binary(max_size=400))
def test_arbitrary_bytes(payload: bytes) -> None:
    check(payload)


@fuzz(400)
@given(mutated())
def test_mutated_valid_posts(payload: bytes) -> None:
    check(payload)


@fuzz(300)
@given(posts, st.booleans(), st.booleans())
def test_any_values_in_any_field(post: dict, ascii_only: bool, bom: bool) -> None:
    """Every Unicode category (lone surrogates as escapes or raw), controls, wrong types."""
    out = check((b"\xef\xbb\xbf" if bom else b"") + encode(post, ascii_only))
    if isinstance(out, ParsedItem):
        assert out.post.id == post["id"] and out.post.text == post["text"]


@fuzz(100)
@given(st.integers(1, 3000), st.sampled_from([b"[", b'{"a":', b'{"a": [']), st.booleans(),
       st.sampled_from(["text", "metadata", "top"]))
def test_deep_nesting(depth: int, opener: bytes, closed: bool, where: str) -> None:
    closer = {b"[": b"]", b'{"a":': b"}", b'{"a": [': b"]}"}[opener]
    nest = opener * depth + b"1" + (closer * depth if closed else b"")
    payload = {"text": b'{"id": "d", "text": ' + nest + b"}",
               "metadata": b'{"id": "d", "text": "x", "metadata": {"k": ' + nest + b"}}",
               "top": nest}[where]
    out = check(payload)
    levels = depth * (opener.count(b"[") + opener.count(b"{")) + {"text": 1, "metadata": 2,
                                                                   "top": 0}[where]
    if levels > MAX_DEPTH:
        assert isinstance(out, FailedRecord) and out.dead_letter.reason == "too_deep"
    assert nesting_depth(payload, stop_above=10**9) >= depth


@fuzz(150)
@given(st.integers(1, 6000), st.sampled_from(["int", "neg", "frac", "exp", "bigexp"]),
       st.sampled_from(["metadata", "created_at", "extra", "id"]))
def test_huge_numbers(digits: int, form: str, where: str) -> None:
    run = "7" * digits
    literal = {"int": run, "neg": "-" + run, "frac": "0." + run, "exp": "1e" + run[:8],
               "bigexp": run[:3] + "E+" + run}[form]
    members = {"metadata": '"id": "n", "metadata": {"n": %s}', "created_at": '"id": "n", '
               '"created_at": %s', "extra": '"id": "n", "n": [%s]', "id": '"id": %s'}[where]
    out = check(('{"text": "x", ' + members % literal + "}").encode())
    overflows = form in ("exp", "bigexp") and float(literal) == float("inf")
    if len(literal) > MAX_NUMBER_CHARS or overflows:
        assert isinstance(out, FailedRecord) and out.dead_letter.reason == "number_too_large"


@fuzz(200)
@given(st.sampled_from(["id", "text", "title", "source", "lang"]), any_text, any_text,
       st.text(st.characters(categories=["Cc", "Cs", "Cf", "Zl", "Zp"]), min_size=1, max_size=3))
def test_special_characters_in_stored_fields(field: str, before: str, after: str,
                                             special: str) -> None:
    post = {"id": "a", "text": "x", field: f"a{before}{special}{after}"}
    out = check(encode(post, ascii_only=True))
    value = json.loads(json.dumps(post[field]))  # as JSON reads it: escaped pairs join
    must_refuse = "\x00" in value or not storable(value, key=False) or (
        field in ("id", "source", "lang") and not storable(value, key=True))
    if must_refuse:
        assert isinstance(out, FailedRecord), value
        if len(value) <= 32:
            assert out.dead_letter.reason == "forbidden_character", out.dead_letter.error


@fuzz(100)
@given(st.lists(st.sampled_from((*FIELDS, "k", "")), min_size=2, max_size=6), st.booleans())
def test_duplicate_keys(keys: list[str], nested: bool) -> None:
    members = ", ".join(f'"{k}": "v{i}"' for i, k in enumerate(keys))
    payload = (f'{{"id": "a", "text": "x", "metadata": {{{members}}}}}' if nested
               else f'{{{members}, "id": "a", "text": "x"}}').encode()
    out = check(payload)
    counted = keys + ([] if nested else ["id", "text"])
    if len(set(counted)) < len(counted):
        assert isinstance(out, FailedRecord) and out.dead_letter.reason == "duplicate_key"


@fuzz(12)
@given(st.sampled_from([("id", MAX_ID_CHARS), ("text", MAX_TEXT_CHARS), ("title", MAX_TEXT_CHARS),
                        ("source", 256), ("lang", 32)]),
       st.integers(-2, 2), st.sampled_from(["a", "é", "😀"]))
def test_fields_at_their_size_limits(limit: tuple[str, int], delta: int, char: str) -> None:
    field, n = limit
    out = check(encode({"id": "a", "text": "x", field: char * (n + delta)}, ascii_only=False))
    assert isinstance(out, ParsedItem) == (delta <= 0)


@pytest.mark.parametrize("extra", [-1, 0, 1])
def test_payload_at_the_byte_limit(extra: int) -> None:
    head, tail = b'{"id": "a", "text": "x", "metadata": {"pad": "', b'"}}'
    size = MAX_PAYLOAD_BYTES + extra
    out = check(head + b"p" * (size - len(head) - len(tail)) + tail)
    assert isinstance(out, ParsedItem) == (extra <= 0)
