"""Generated posts (tests/news_posts.py) with planted PII, for the done-when test and the
docs/s measurement. Every planted value is made up (see tests/privacy/pii_cases.py).

    .venv/bin/python -m tests.privacy.pii_posts OUT.jsonl [--n 2000] [--share 0.2]

writes the posts and prints how many of each kind. What is planted, where:

- titles (`share` of the posts): one pattern-type value (email, phone, card, IBAN, IP, SSN,
  URL, handle) in a headline;
- texts (`share` of the posts): a sentence naming a person, and a place; also in some titles
  (stored only as redacted entities, with --entities);
- dead letters (one line in 40): invalid JSON holding an email and a phone number, a post
  with an empty text and an email in its title, bytes that are not UTF-8 around an email,
  invalid JSON naming a person and a place;
- with `pii_ids`: ids that are emails and sources that are social handles.
"""

from __future__ import annotations

import argparse
import json
import random
from dataclasses import dataclass, field
from pathlib import Path

from tests.news_posts import LABELS, news_post, topic_sentence
from tests.privacy.pii_cases import TEMPLATES, value

PATTERN_KINDS = ["EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "IBAN_CODE", "IP_ADDRESS",
                 "US_SSN", "URL", "SOCIAL_HANDLE"]
# Names and places spaCy's en_core_web_sm finds in these sentences, whatever post they end
# (checked: the done-when test needs names it finds; its recall on harder ones is measured by
# tests/privacy/pii_eval.py). No place here is one of tests/news_posts.py's cities.
PEOPLE = ["Amara Okonkwo", "Tomasz Brzezinski", "Ingrid Halvorsen", "Kwame Mensah",
          "Lucia Ferraro", "Priya Raman", "Rafael Quispe", "Signe Eriksen", "Elena Petrova",
          "Oskar Lindgren", "Daniel Moreau", "Sofia Vasquez"]
PLACES = ["Helsinki", "Manila", "Lima", "Accra", "Tbilisi", "Reykjavik"]  # not Bergen: an ORG
NAME_SENTENCE = "Finance minister {p} said the plan would be announced in {c} on Monday."
NAME_TITLE = "Talks in {c}: minister {p} says deal is close"  # "{p} visits {c}": ORG at times


@dataclass
class Planted:
    """The posts as JSON Lines bytes and every value planted in them."""

    lines: list[bytes] = field(default_factory=list)
    patterns: list[str] = field(default_factory=list)   # found by the default policy
    names: list[str] = field(default_factory=list)      # found with --entities (NER)
    identifiers: list[str] = field(default_factory=list)  # ids and sources (pii_ids)
    dead: int = 0


def _headline(rng: random.Random, label: str) -> str:
    words = topic_sentence(rng, label).rstrip(".").split()
    return " ".join(words[: rng.randint(5, 9)])


def pii_posts(n: int, seed: int = 7, share: float = 0.2, pii_ids: bool = False,
              dead_every: int = 40) -> Planted:
    rng = random.Random(seed)
    out = Planted()
    for i in range(n):
        if dead_every and i % dead_every == dead_every - 1:
            out.lines.append(_dead_letter(rng, i, out))
            continue
        label = LABELS[rng.randrange(len(LABELS))]
        post: dict[str, str] = {"id": f"post-{i:05d}", "text": news_post(rng, label),
                                "title": _headline(rng, label), "kind": "news"}
        planted_title = rng.random() < share
        if planted_title:
            kind = PATTERN_KINDS[i % len(PATTERN_KINDS)]
            v = value(kind, rng)
            post["title"] = rng.choice(TEMPLATES[kind]).format(v=v).rstrip(".")
            out.patterns.append(v)
        if rng.random() < share:
            person, place = rng.choice(PEOPLE), rng.choice(PLACES)
            post["text"] += " " + NAME_SENTENCE.format(p=person, c=place)
            if not planted_title and rng.random() < 0.5:
                post["title"] = NAME_TITLE.format(p=person, c=place)
            out.names += [person, place]
        if pii_ids and rng.random() < 0.5:
            post["id"] = f"{value('EMAIL_ADDRESS', rng).split('@')[0]}.{i}@example.com"
            post["source"] = f"@reader_{i}"
            post["kind"] = "social"
            out.identifiers += [post["id"], post["source"]]
        out.lines.append(json.dumps(post, ensure_ascii=False).encode("utf-8"))
    return out


def _dead_letter(rng: random.Random, i: int, out: Planted) -> bytes:
    kind = out.dead % 4
    out.dead += 1
    email, phone = value("EMAIL_ADDRESS", rng), value("PHONE_NUMBER", rng)
    if kind == 0:  # invalid JSON
        out.patterns += [email, phone]
        return f'{{"id": "dead-{i}", "text": "write to {email} or call {phone}'.encode()
    if kind == 3:  # invalid JSON naming a person and a place (redacted with --entities)
        person, place = rng.choice(PEOPLE), rng.choice(PLACES)
        out.names += [person, place]
        return (f'{{"id": "dead-{i}", "text": "' + NAME_SENTENCE.format(p=person, c=place)
                ).encode()
    if kind == 1:  # valid JSON, empty text: a validate dead letter with the whole post
        out.patterns.append(email)
        return json.dumps({"id": f"dead-{i}", "text": "  ", "title": f"Mail {email}"}).encode()
    out.patterns.append(email)  # not UTF-8: kept only as its length and sha256
    return b'{"id": "dead-%d", "text": "\xff\xfe ' % i + email.encode() + b'"}'


def redaction_cost(planted: Planted, policy: str = "default", batch: int = 512) -> float:
    """Microseconds per input that the store's redaction step takes over these posts, as the
    writer gets them (WriteBatches of results with titles, and dead letters), best of 3."""
    import time

    from docstream.pipelines.parse import parse_raw
    from docstream.pipelines.records import RawInput
    from docstream.privacy.redact import redactor_for
    from docstream.schemas.classification import Classification, ModelRef
    from docstream.schemas.envelope import ResultRecord, WriteBatch
    from docstream.schemas.position import InputPosition

    ref = ModelRef(name="noop", version="0", weights_sha256="0" * 64)
    records: list = []
    for line, payload in enumerate(planted.lines, start=1):
        out = parse_raw(RawInput(InputPosition(kind="file", file="posts.jsonl", line=line),
                                 payload))
        if hasattr(out, "dead_letter"):
            records.append(out)
            continue
        records.append(ResultRecord(
            result=Classification(doc_id=out.post.id, source=out.post.source_key,
                                  label="World", score=0.9, scores={"World": 0.9}, model=ref),
            position=out.raw.position, input_sha256=out.sha256, kind=out.post.kind,
            title=out.post.title))
    batches = [WriteBatch(run_id="cost", results=[r for r in records[i:i + batch]
                                                  if isinstance(r, ResultRecord)],
                          failures=[r for r in records[i:i + batch]
                                    if not isinstance(r, ResultRecord)])
               for i in range(0, len(records), batch)]
    redactor = redactor_for(policy)
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        for b in batches:
            redactor.redact(b)
        best = min(best, time.perf_counter() - t0)
    return 1e6 * best / len(records)


def main() -> None:
    ap = argparse.ArgumentParser(description="posts with planted PII, as JSON Lines")
    ap.add_argument("out", type=Path)
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--share", type=float, default=0.2)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--cost", action="store_true", help="also time the default policy's "
                    "redaction over these posts (us per post)")
    args = ap.parse_args()
    planted = pii_posts(args.n, args.seed, args.share)
    args.out.write_bytes(b"\n".join(planted.lines) + b"\n")
    print(f"{args.out}: {len(planted.lines)} lines, {len(planted.patterns)} pattern values, "
          f"{len(planted.names)} names and places, {planted.dead} dead letters")
    if args.cost:
        for policy in ("off", "default"):
            print(f"redaction, policy {policy}: {redaction_cost(planted, policy):.1f} us/post")


if __name__ == "__main__":
    main()
