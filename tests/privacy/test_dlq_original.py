"""The `.dlq` topic keeps the ORIGINAL message: `docstream replay` reads originals from it.
(Only the store gets the redacted copy; the topic is governed by the broker's retention and
ACLs.) No broker here: the publisher is replaced by one that keeps what it is given."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest

from docstream.pipelines import stream_fns
from docstream.pipelines.records import Outcome
from docstream.schemas.dead_letter import DeadLetter
from docstream.schemas.envelope import FailedRecord
from docstream.schemas.position import InputPosition


class KeepingPublisher:
    sent: ClassVar[list[Any]] = []

    def __init__(self, bootstrap: str) -> None:
        pass

    def publish(self, messages: Any) -> int:
        KeepingPublisher.sent += list(messages)
        return len(KeepingPublisher.sent)

    def close(self) -> None:
        pass


def test_dead_letters_go_to_the_dlq_unredacted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stream_fns, "DeadLetterPublisher", KeepingPublisher)
    payload, key = b'{"id": "x", "text": "mail jo@example.com \xff', b"jo@example.com"
    dead = FailedRecord(dead_letter=DeadLetter(
        position=InputPosition(kind="kafka", topic="posts", partition=0, offset=7),
        payload=payload, key=key, doc_id="jo@example.com", stage="decode",
        reason="invalid_utf8", error="input is not valid UTF-8 near jo@example.com"),
        input_sha256="d" * 64)
    fn = stream_fns.PublishDeadLetters("localhost:9092", "run")
    fn.setup()
    out = list(fn.process(Outcome(failures=[dead])))
    [message] = KeepingPublisher.sent
    assert (message.key, message.value, message.offset) == (key, payload, 7)
    assert out[0].failures == [dead]  # the store's copy is redacted later, by the writer
