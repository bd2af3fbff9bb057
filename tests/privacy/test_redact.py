"""The redactor on WriteBatches: every stored field, the counts, identifiers, payloads."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from docstream.privacy.anonymize import keyed_hash
from docstream.privacy.policy import Policy, load_policy
from docstream.privacy.redact import IdentityRedactor, PolicyRedactor, redactor_for
from docstream.schemas.classification import Classification, Entity, ModelRef
from docstream.schemas.dead_letter import DeadLetter
from docstream.schemas.envelope import FailedRecord, ResultRecord, WriteBatch
from docstream.schemas.position import InputPosition
from tests.privacy.conftest import TEST_KEY

REF = ModelRef(name="m", version="1", weights_sha256="0" * 64)
KEY = TEST_KEY.encode()


def result(doc: str = "d1", title: str | None = None, source: str = "",
           entities: list[Entity] | None = None, line: int = 1,
           text: str | None = None) -> ResultRecord:
    """`text`: kept for review, as for a flagged post (--store-text review)."""
    return ResultRecord(
        result=Classification(doc_id=doc, source=source, label="World", score=0.9,
                              scores={"World": 0.9}, model=REF, entities=entities,
                              needs_review=text is not None),
        position=InputPosition(kind="file", file="in.jsonl", line=line), input_sha256="c" * 64,
        title=title, text=text)


def failure(payload: bytes, error: str = "invalid JSON", key: bytes | None = None,
            doc_id: str | None = None, source: str | None = None, line: int = 9) -> FailedRecord:
    return FailedRecord(dead_letter=DeadLetter(
        position=InputPosition(kind="kafka", topic="t", partition=0, offset=line),
        payload=payload, key=key, doc_id=doc_id, source=source, stage="parse",
        reason="invalid_json", error=error), input_sha256="d" * 64)


def policy(**changes: Any) -> Policy:
    base = load_policy("default").model_dump()
    base.update(changes)
    return Policy.model_validate(base)


@pytest.fixture(scope="module")
def default() -> PolicyRedactor:
    return redactor_for("default")  # type: ignore[return-value]


def test_title_patterns_are_replaced_and_counted(default: PolicyRedactor) -> None:
    batch = WriteBatch(run_id="r", results=[
        result(title="Call +44 20 7946 0958 or mail jo.doe@example.com, says @jo_d"),
        result("d2", "Markets steady as rates hold", line=2)])
    out = default.redact(batch)
    first, second = out.results
    assert first.title == "Call <PHONE_NUMBER> or mail <EMAIL_ADDRESS>, says <SOCIAL_HANDLE>"
    assert first.pii_counts == {"PHONE_NUMBER": 1, "EMAIL_ADDRESS": 1, "SOCIAL_HANDLE": 1}
    assert second.title == "Markets steady as rates hold" and second.pii_counts == {}
    assert {r.pii_policy for r in out.results} == {"default@1"}


def test_names_reuse_the_entities_of_the_spacy_pass(default: PolicyRedactor,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """With --entities, names come from preprocessing's spaCy pass: no spaCy runs here."""
    def no_second_pass(texts: Any) -> Any:
        raise AssertionError("spaCy ran again")
    monkeypatch.setattr(default.detector, "names", no_second_pass)
    ents = [Entity(text="Amara Okonkwo", label="PERSON", start=0, end=13),
            Entity(text="Nairobi", label="GPE", start=21, end=28),
            Entity(text="the Treasury", label="ORG", start=40, end=52),
            Entity(text="ops@example.org", label="ORG", start=60, end=75)]
    out = default.redact(WriteBatch(run_id="r", results=[
        result(title="Amara  Okonkwo visits Nairobi; AmaraOkonkwo is not her", entities=ents)]))
    rec = out.results[0]
    assert rec.title == "<PERSON> visits <LOCATION>; AmaraOkonkwo is not her"
    assert [e.text for e in rec.result.entities or []] == [
        "<PERSON>", "<LOCATION>", "the Treasury", "<EMAIL_ADDRESS>"]
    assert rec.pii_counts == {"PERSON": 2, "LOCATION": 2, "EMAIL_ADDRESS": 1}


def test_names_in_dead_letters_need_the_ner_pass(default: PolicyRedactor) -> None:
    dead = failure(b'{"text": "Finance minister Kwame Mensah said so in Helsinki')
    assert default.redact(WriteBatch(run_id="r", failures=[dead])).failures[0] \
        .dead_letter.payload == dead.dead_letter.payload  # no --entities: names are kept
    with_entities = PolicyRedactor(load_policy("default"), None, entities=True).load()
    out = with_entities.redact(WriteBatch(run_id="r", failures=[dead])).failures[0]
    assert out.dead_letter.payload == b'{"text": "Finance minister <PERSON> said so in <LOCATION>'
    assert out.pii_counts == {"PERSON": 1, "LOCATION": 1}


def test_ner_always_runs_spacy_on_titles_without_entities() -> None:
    redactor = PolicyRedactor(policy(ner="always"), None).load()
    out = redactor.redact(WriteBatch(run_id="r", results=[
        result(title="Finance minister Kwame Mensah visits Helsinki")]))
    assert out.results[0].title == "Finance minister <PERSON> visits <LOCATION>"
    # kept texts too, in the same spaCy pass as the titles
    passes: list[list[str]] = []
    names = redactor.detector.names

    def counted(texts: list[str]) -> Any:
        passes.append(list(texts))
        return names(texts)
    redactor.detector.names = counted  # type: ignore[method-assign]
    out = redactor.redact(WriteBatch(run_id="r", results=[
        result(title="Markets steady", text="Kwame Mensah flew to Helsinki. Mail kwame@example.com"),
        result("d2", text="Later, finance minister Kwame Mensah spoke in Nairobi.", line=2),
        result("d3", title="Amara Okonkwo in Nairobi", line=3, entities=[])]))
    assert len(passes) == 1 and len(passes[0]) == 3  # the one with entities is not searched
    first, second, third = out.results
    assert first.text == "<PERSON> flew to <LOCATION>. Mail <EMAIL_ADDRESS>"
    assert first.pii_counts == {"PERSON": 1, "LOCATION": 1, "EMAIL_ADDRESS": 1}
    assert second.text == "Later, finance minister <PERSON> spoke in <LOCATION>."
    assert third.title == "Amara Okonkwo in Nairobi"  # its entities are the names (none)


def test_kept_text_is_redacted_as_strictly_as_the_title(default: PolicyRedactor,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Pattern types, and with --entities the names of preprocessing's spaCy pass (reused:
    no spaCy runs here), in the text a flagged result keeps for review; counted with the
    rest."""
    def no_second_pass(texts: Any) -> Any:
        raise AssertionError("spaCy ran again")
    monkeypatch.setattr(default.detector, "names", no_second_pass)
    ents = [Entity(text="Amara Okonkwo", label="PERSON", start=0, end=13),
            Entity(text="Nairobi", label="GPE", start=30, end=37)]
    text = ("Amara\nOkonkwo told reporters in Nairobi: write to amara.o@example.com or call "
            "+44 20 7946 0958. Nairobian papers ignored it.")
    out = default.redact(WriteBatch(run_id="r", results=[
        result(title="Amara Okonkwo speaks", text=text, entities=ents),
        result("d2", text="Markets steady as rates hold", line=2),
        result("d3", title="mail jo@example.com", line=3)]))
    flagged, clean, unkept = out.results
    assert flagged.text == ("<PERSON> told reporters in <LOCATION>: write to <EMAIL_ADDRESS> "
                            "or call <PHONE_NUMBER>. Nairobian papers ignored it.")
    assert flagged.title == "<PERSON> speaks"
    # title 1 PERSON; text 1 PERSON, 1 LOCATION, 1 EMAIL, 1 PHONE; entities 1 PERSON 1 LOCATION
    assert flagged.pii_counts == {"PERSON": 3, "LOCATION": 2, "EMAIL_ADDRESS": 1,
                                  "PHONE_NUMBER": 1}
    assert clean.text == "Markets steady as rates hold" and clean.pii_counts == {}
    assert unkept.text is None and unkept.pii_counts == {"EMAIL_ADDRESS": 1}


def test_dead_letter_payload_error_and_escapes(default: PolicyRedactor) -> None:
    payload = b'{"id": "x", "text": "write to jo\\u0040example.com or https:\\/\\/example.org/p'
    out = default.redact(WriteBatch(run_id="r", failures=[
        failure(payload, error="field 'from': jo@example.com is not allowed")])).failures[0]
    d = out.dead_letter
    assert d.payload == b'{"id": "x", "text": "write to <EMAIL_ADDRESS> or <URL>'
    assert d.error == "field 'from': <EMAIL_ADDRESS> is not allowed"
    assert out.pii_counts == {"EMAIL_ADDRESS": 2, "URL": 1}


def test_clean_payloads_are_kept_byte_for_byte(default: PolicyRedactor) -> None:
    payload = b'\xef\xbb\xbf{"id": "a\\u00e9", "text": "caf\xc3\xa9 \\n"} '
    out = default.redact(WriteBatch(run_id="r", failures=[failure(payload)])).failures[0]
    assert out.dead_letter.payload == payload and out.pii_counts == {}


def test_undecodable_payloads_keep_only_length_and_sha256(default: PolicyRedactor) -> None:
    payload = b'{"text": "\xff\xfe jo@example.com"}'
    out = default.redact(WriteBatch(run_id="r", failures=[failure(payload)])).failures[0]
    digest = hashlib.sha256(payload).hexdigest()
    assert out.dead_letter.payload == f"<undecodable: {len(payload)} bytes, sha256 {digest}>" \
        .encode()


def test_a_character_cut_by_truncation_is_dropped_not_the_payload(
        default: PolicyRedactor) -> None:
    payload = '{"text": "mail jo@example.com café'.encode()[:-1]  # oversize: cut at 4 KiB
    out = default.redact(WriteBatch(run_id="r", failures=[failure(payload)])).failures[0]
    assert out.dead_letter.payload == b'{"text": "mail <EMAIL_ADDRESS> caf'


def test_hashed_identifiers_stay_unique_and_joinable() -> None:
    redactor = PolicyRedactor(policy(identifiers="hash"), KEY).load()
    batch = WriteBatch(run_id="r", results=[
        result("jo@example.com", source="@jo_d"), result("ann@example.com", source="@jo_d",
                                                         line=2)],
        failures=[failure(b"{", key=b"jo@example.com", doc_id="jo@example.com", source="@jo_d")])
    out = redactor.redact(batch)
    a, b = (r.result for r in out.results)
    d = out.failures[0].dead_letter
    assert a.doc_id == keyed_hash(KEY, b"jo@example.com") != b.doc_id  # unique
    assert a.doc_id == d.doc_id and a.source == b.source == d.source  # joinable
    assert d.key == keyed_hash(KEY, b"jo@example.com").encode()
    assert len(a.doc_id) == 64 and "jo" not in a.doc_id + a.source
    assert redactor.redact(WriteBatch(run_id="r", results=[result(source="")])).results[0] \
        .result.source == ""  # "no source" stays "no source"


def test_every_operator() -> None:
    ops = {"EMAIL_ADDRESS": {"operator": "hash", "length": 12},
           "CREDIT_CARD": {"operator": "mask", "keep_last": 4},
           "US_SSN": {"operator": "redact"}, "URL": {"operator": "keep"},
           "PHONE_NUMBER": {"operator": "replace", "new_value": "[phone]"}}
    redactor = PolicyRedactor(policy(operators=ops), KEY).load()
    title = ("jo@example.com paid with 4111 1111 1111 1111, SSN 536-22-8741, see "
             "example.org, call (212) 555-0147")
    out = redactor.redact(WriteBatch(run_id="r", results=[result(title=title)])).results[0]
    token = keyed_hash(KEY, b"jo@example.com")[:12]
    assert out.title == (f"{token} paid with ***************1111, SSN , see example.org, "
                         "call [phone]")
    assert out.pii_counts == {"EMAIL_ADDRESS": 1, "CREDIT_CARD": 1, "US_SSN": 1,
                              "PHONE_NUMBER": 1}  # kept values are not counted


def test_messages_quoting_input_are_redacted(default: PolicyRedactor) -> None:
    message = ('duplicate key value violates unique constraint "pk" DETAIL: Key (source, id)='
               '(@jo_d, jo@example.com) already exists.')
    assert default.redact_text(message) == (
        'duplicate key value violates unique constraint "pk" DETAIL: Key (source, id)='
        '(<SOCIAL_HANDLE>, <EMAIL_ADDRESS>) already exists.')


def test_off_stamps_off_and_changes_nothing() -> None:
    batch = WriteBatch(run_id="r", results=[result(title="jo@example.com",
                                                   text="Call +44 20 7946 0958, jo@example.com")],
                       failures=[failure(b"\xff jo@example.com")])
    out = IdentityRedactor().redact(batch)
    assert out.results[0].title == "jo@example.com"
    assert out.results[0].text == "Call +44 20 7946 0958, jo@example.com"
    assert out.failures[0].dead_letter.payload == b"\xff jo@example.com"
    assert [r.pii_policy for r in (*out.results, *out.failures)] == ["off", "off"]
    assert [r.pii_counts for r in (*out.results, *out.failures)] == [None, None]  # not looked


def test_stored_payload_is_what_the_writer_keeps(default: PolicyRedactor) -> None:
    from docstream.privacy.redact import stored_payload

    for payload in (b'{"a": "jo@example.com"}', b"{oops \x00\xff", b"plain"):
        written = default.redact(WriteBatch(run_id="r", failures=[failure(payload)]))
        assert stored_payload(payload) == written.failures[0].dead_letter.payload
    assert stored_payload(b"{oops \xff", "off") == b"{oops \xff"


def test_hashed_identifiers_inside_payloads_too() -> None:
    redactor = PolicyRedactor(policy(identifiers="hash"), KEY).load()
    payload = b'{"id": "reader42", "source" : "@jo_d", "text": "broken'
    out = redactor.redact(WriteBatch(run_id="r", failures=[failure(payload)])).failures[0]
    h = keyed_hash(KEY, b"reader42")
    assert out.dead_letter.payload == (f'{{"id": "{h}", "source" : "'
                                       f'{keyed_hash(KEY, b"@jo_d")}", "text": "broken').encode()
    assert out.pii_counts == {}  # identifiers are hashed, not counted
