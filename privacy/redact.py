"""The redaction step. Everything written to the store passes through `Redactor.redact`.

`PolicyRedactor` applies a policy (privacy.policy) to what a `WriteBatch` would store:

- results: the title, and the post's text where the run keeps it for review
  (`docstream run --store-text`: flagged posts by default), both alike; the named entities
  (with --entities) — a PERSON or LOCATION entity (spaCy's PERSON, GPE, LOC, FAC) becomes its
  operator's output, any other one is searched for pattern types; the doc id and source
  (`identifiers`);
- dead letters: the payload decoded as UTF-8 (JSON `\\uXXXX` escapes read as the characters
  they stand for), then searched; bytes that are not UTF-8 are replaced by
  `<undecodable: N bytes, sha256 HEX>` (the original is at its position, or in the `.dlq`
  topic, for replay); the error message (pattern types); the doc id, source and Kafka key
  (`identifiers`; with "hash", the payload's own "id" and "source" values too).

Names (PERSON, LOCATION) are redacted when the run extracts entities (--entities) or the
policy says `"ner": "always"`. With --entities, a result's names come from the spaCy pass that
preprocessing already made over the title and text: they are replaced in the title and the
kept text where they occur, and no spaCy runs again (this relies on the model's preprocessing
reading the title, `include_title`, as every model does by default and the bundled one does;
that pass read the cleaned text, so a name that the original writes otherwise, split by
markup or with HTML entities, e.g. `<b>Kwame</b> Mensah`, is not found in the original).
Otherwise (the policy's "always" on a run without --entities, and every dead letter, which
never reached preprocessing or never got its entities) the redactor runs spaCy's NER itself,
once per batch over the titles and kept texts that need it (and once over the dead letters'
payloads): about 1.3 ms a headline here, more for a text, in proportion to its length,
against ~0.05 ms for the reuse.

Each record leaves with `pii_policy` ("default@1", "off") and `pii_counts` (entities changed
per type, over all its stored fields); the store's audit record carries both, never a value.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections import Counter
from collections.abc import Sequence
from functools import lru_cache
from typing import Any, Protocol

from docstream.schemas.classification import Entity
from docstream.schemas.envelope import FailedRecord, ResultRecord, WriteBatch

from .anonymize import Edit, Found, Operators
from .detect import WARM_UP, Detector
from .policy import DEFAULT, OFF, SPACY_LABELS, Policy, load_policy, policy_key

POLICY_ENV = "DOCSTREAM_PII_POLICY"  # "default", "off", a packaged name or a JSON file
ENTITIES_ENV = "DOCSTREAM_PII_ENTITIES"  # "1": the run extracts entities (--entities)
_JSON_ESCAPE = re.compile(r"\\u([0-9a-fA-F]{4})|\\/")
# "id": "…" and "source": "…" in a payload, parsed or not (identifiers: hash)
_JSON_IDENTIFIER = re.compile(r'("(?:id|source)"\s*:\s*")((?:[^"\\]|\\.)*)(")')
_NER_SCORE = 0.85  # what Presidio's SpacyRecognizer gives spaCy's entities


class Redactor(Protocol):
    name: str

    def redact(self, batch: WriteBatch) -> WriteBatch:
        """Return the batch with personal data removed from every text and payload."""
        ...

    def redact_text(self, text: str) -> str:
        """`text` (a log line, a database message) with personal data removed."""
        ...

    def redact_with_edits(self, text: str, entities: Sequence[Entity] | None = None,
                          names: Sequence[Any] | None = None) -> tuple[str, list[Edit]]:
        """A result's text as stored, and where each redacted span went."""
        ...

    def identifier(self, value: str) -> str:
        """A doc id or source as the store keys it (hashed under `identifiers: hash`)."""
        ...


class IdentityRedactor:
    """`--pii-policy off`: writes everything as it came; audit records say "off"."""

    name = OFF

    def redact(self, batch: WriteBatch) -> WriteBatch:
        return batch.model_copy(update={
            "results": [r.model_copy(update={"pii_policy": OFF}) for r in batch.results],
            "failures": [f.model_copy(update={"pii_policy": OFF}) for f in batch.failures],
        })

    def redact_text(self, text: str) -> str:
        return text

    def redact_with_edits(self, text: str, entities: Sequence[Entity] | None = None,
                          names: Sequence[Any] | None = None) -> tuple[str, list[Edit]]:
        return text, []

    def identifier(self, value: str) -> str:
        return value


def _unescape_json(text: str) -> str:
    """JSON's \\uXXXX and \\/ escapes as the characters they stand for (surrogates kept)."""
    def one(m: re.Match[str]) -> str:
        if m.group(1) is None:
            return "/"
        code = int(m.group(1), 16)
        return m.group(0) if 0xD800 <= code <= 0xDFFF or code < 0x20 else chr(code)
    return _JSON_ESCAPE.sub(one, text)


def _decoded(payload: bytes) -> str | None:
    """The payload as text; a multi-byte character cut by truncation at the end is dropped;
    None when the bytes are not UTF-8."""
    try:
        return payload.decode("utf-8")
    except UnicodeDecodeError as e:
        if e.reason == "unexpected end of data" and e.end == len(payload):
            return payload[:e.start].decode("utf-8", "strict") if e.start else ""
        return None


def undecodable_marker(payload: bytes) -> bytes:
    return (f"<undecodable: {len(payload)} bytes, sha256 "
            f"{hashlib.sha256(payload).hexdigest()}>").encode("ascii")


class PolicyRedactor:
    """Redacts a `WriteBatch` under a `Policy` (see the module docstring).

    `entities`: the run extracts entities (--entities), so names are redacted in dead letters
    too (a result with entities always has its names redacted)."""

    def __init__(self, policy: Policy, key: bytes | None, *, entities: bool = False) -> None:
        self.policy = policy
        self.name = policy.label
        self.ops = Operators(policy, key)
        self.detector = Detector(policy)
        self.ner_types = frozenset(policy.ner_types)
        self.names_always = bool(self.ner_types) and policy.ner == "always"
        self.names_in_dead_letters = bool(self.ner_types) and (self.names_always or entities)
        self.hash_ids = policy.identifiers == "hash"

    def load(self) -> PolicyRedactor:
        """Build and warm the analyzers now (at the start of a run), not on the first input."""
        self.detector.load(ner=self.names_always or self.names_in_dead_letters)
        self.redact_text(WARM_UP)
        return self

    # -- texts -------------------------------------------------------------------------------

    def _text(self, text: str, extra: Sequence[Any] = ()) -> tuple[str, Counter[str]]:
        return self.ops.apply(text, [*self.detector.patterns(text), *extra])

    def redact_text(self, text: str) -> str:
        """Pattern types only: messages are ours, with input quoted in them at most (NER on
        them mistakes their own words for names)."""
        return self._text(text)[0] if text else text

    def _names_in(self, title: str, entities: Sequence[Entity]) -> list[Any]:
        """Where the names preprocessing's spaCy pass found occur in `title` (reuse)."""
        found = []
        for e in entities:
            kind = SPACY_LABELS.get(e.label)
            if kind not in self.ner_types or not e.text.strip():
                continue
            words = r"\s+".join(re.escape(w) for w in e.text.split())
            found += [Found(kind, m.start(), m.end(), _NER_SCORE)
                      for m in re.finditer(rf"(?<!\w){words}(?!\w)", title)]
        return found

    def _entities(self, entities: list[Entity], counts: Counter[str]) -> list[Entity]:
        out = []
        for e in entities:
            kind = SPACY_LABELS.get(e.label)
            if kind in self.ner_types:
                text = self.ops.whole(kind, e.text)
                counts[kind] += 1
            else:
                text, found = self._text(e.text)
                counts.update(found)
            out.append(e if text == e.text else e.model_copy(update={"text": text}))
        return out

    # -- records -----------------------------------------------------------------------------

    def _field(self, text: str | None, names: list[Any] | None, entities: list[Entity] | None,
               counts: Counter[str]) -> str | None:
        """A result's title or text: pattern types, and names from `names` (the second spaCy
        pass) or else from the result's entities (the reuse)."""
        if not text:
            return text
        if names is None:
            names = (self._names_in(text, entities) if entities is not None and self.ner_types
                     else [])
        text, found = self._text(text, names)
        counts.update(found)
        return text

    def redact_with_edits(self, text: str, entities: Sequence[Entity] | None = None,
                          names: Sequence[Any] | None = None) -> tuple[str, list[Edit]]:
        """A result's text exactly as `_field` stores it (the same findings: pattern types,
        and names from `names` or else from `entities`), with where each finding went, so
        spans of the original text (explanations) can be mapped into the stored one."""
        if not text:
            return text, []
        if names is None:
            names = (self._names_in(text, entities) if entities is not None and self.ner_types
                     else [])
            if self.names_always and entities is None:
                names = self.detector.names([text])[0]
        new, _counts, edits = self.ops.apply_with_edits(
            text, [*self.detector.patterns(text), *names])
        return new, edits

    def identifier(self, value: str) -> str:
        """A doc id or source as the store keys it (hashed under `identifiers: hash`)."""
        return self.ops.identifier(value) if self.hash_ids else value

    def _result(self, rec: ResultRecord, title_names: list[Any] | None,
                text_names: list[Any] | None = None) -> ResultRecord:
        r = rec.result
        counts: Counter[str] = Counter()
        title = self._field(rec.title, title_names, r.entities, counts)
        text = self._field(rec.text, text_names, r.entities, counts)
        update: dict[str, Any] = {}
        if r.entities:
            update["entities"] = self._entities(r.entities, counts)
        if self.hash_ids:
            update["doc_id"] = self.ops.identifier(r.doc_id)
            update["source"] = self.ops.identifier(r.source)
        result = r.model_copy(update=update) if update else r
        return rec.model_copy(update={"result": result, "title": title, "text": text,
                                      "pii_policy": self.name, "pii_counts": dict(counts)})

    def _payload_text(self, payload: bytes) -> tuple[str | None, bool]:
        """The payload as the text to search (None: not UTF-8), and whether it already
        differs from the payload: JSON escapes read, and under `identifiers: hash` the post's
        own "id" and "source" values hashed as their columns hold them."""
        text = _decoded(payload)
        if text is None:
            return None, True
        plain = _unescape_json(text) if "\\" in text else text
        if self.hash_ids:
            plain = _JSON_IDENTIFIER.sub(
                lambda m: m[1] + self.ops.identifier(_unescape_json(m[2])) + m[3], plain)
        return plain, self.hash_ids and plain != text

    def _payload(self, payload: bytes, names: list[Any], counts: Counter[str]) -> bytes:
        """`names`: found in `_payload_text(payload)`, whose offsets they carry."""
        plain, changed = self._payload_text(payload)
        if plain is None:
            return undecodable_marker(payload)
        redacted, found = self._text(plain, names)
        counts.update(found)
        return redacted.encode("utf-8", "surrogatepass") if found or changed else payload

    def _failure(self, rec: FailedRecord, payload_names: list[Any]) -> FailedRecord:
        d = rec.dead_letter
        counts: Counter[str] = Counter()
        payload = self._payload(d.payload, payload_names, counts)
        error, found = self._text(d.error)
        counts.update(found)
        update: dict[str, Any] = {"payload": payload, "error": error}
        if self.hash_ids:
            update["doc_id"] = None if d.doc_id is None else self.ops.identifier(d.doc_id)
            update["source"] = None if d.source is None else self.ops.identifier(d.source)
            update["key"] = None if d.key is None else self.ops.key_bytes(d.key)
        return rec.model_copy(update={"dead_letter": d.model_copy(update=update),
                                      "pii_policy": self.name, "pii_counts": dict(counts)})

    def _second_pass(self, results: Sequence[ResultRecord]
                     ) -> tuple[list[list[Any] | None], list[list[Any] | None]]:
        """Names in the titles and texts of the results without entities, for the policy's
        "always": one spaCy pass over them all (None where there is nothing to search)."""
        title_names: list[list[Any] | None] = [None] * len(results)
        text_names: list[list[Any] | None] = [None] * len(results)
        if not self.names_always:
            return title_names, text_names
        todo = [(out, i, value) for i, r in enumerate(results) if r.result.entities is None
                for out, value in ((title_names, r.title), (text_names, r.text)) if value]
        for (out, i, _), names in zip(todo, self.detector.names([v for _, _, v in todo]),
                                      strict=True):
            out[i] = names
        return title_names, text_names

    def redact(self, batch: WriteBatch) -> WriteBatch:
        title_names, text_names = self._second_pass(batch.results)
        results = [self._result(r, t, x) for r, t, x
                   in zip(batch.results, title_names, text_names, strict=True)]
        failures = batch.failures
        if failures:
            names: list[list[Any]] = [[] for _ in failures]
            if self.names_in_dead_letters:
                names = self.detector.names(
                    [self._payload_text(f.dead_letter.payload)[0] or "" for f in failures])
            failures = [self._failure(f, n) for f, n in zip(failures, names, strict=True)]
        return batch.model_copy(update={"results": results, "failures": failures})


@lru_cache(maxsize=8)
def _build(spec: str, entities: bool, key: bytes | None) -> Redactor:
    policy = load_policy(spec)
    return PolicyRedactor(policy, key, entities=entities).load()


_IDENTITY = IdentityRedactor()


def redactor_for(spec: str = DEFAULT, *, entities: bool = False) -> Redactor:
    """The redactor of `--pii-policy SPEC`: "off", a packaged policy name, or a JSON file.
    Built once per process and policy; raises PolicyError (one line) when it cannot be used:
    a bad file, or a policy that hashes with no $DOCSTREAM_PII_KEY."""
    if spec == OFF:
        return _IDENTITY
    return _build(spec, entities, policy_key(load_policy(spec)))


def activate(spec: str, *, entities: bool) -> Redactor:
    """Make `spec` the policy of this process and of the processes it starts (the store
    writers of a job read it from the environment), and build it now: a bad policy stops the
    run before it starts."""
    redactor = redactor_for(spec, entities=entities)
    os.environ[POLICY_ENV] = spec
    os.environ[ENTITIES_ENV] = "1" if entities else "0"
    return redactor


def stored_payload(payload: bytes, spec: str = DEFAULT) -> bytes:
    """What the store keeps of a dead letter's payload under policy `spec` without --entities
    (for tools and tests that compare stored payloads with their inputs)."""
    redactor = redactor_for(spec)
    if not isinstance(redactor, PolicyRedactor):
        return payload
    return redactor._payload(payload, [], Counter())


def default_redactor() -> Redactor:
    """The policy of this process: $DOCSTREAM_PII_POLICY (set by `docstream run
    --pii-policy`), else the packaged default policy."""
    return redactor_for(os.environ.get(POLICY_ENV) or DEFAULT,
                        entities=os.environ.get(ENTITIES_ENV) == "1")
