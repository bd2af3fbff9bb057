"""Redaction works offline: no request for the Public Suffix List (tldextract), no spaCy model
download (Presidio's default engine would fetch en_core_web_lg), and a missing model is
refused in one line, never downloaded."""

from __future__ import annotations

import socket
from typing import Any

import pytest
import spacy.cli

from docstream.privacy.policy import Policy, PolicyError, load_policy
from docstream.privacy.redact import PolicyRedactor
from docstream.schemas.classification import Classification, ModelRef
from docstream.schemas.envelope import ResultRecord, WriteBatch
from docstream.schemas.position import InputPosition


class NetworkUsed(AssertionError):
    pass


@pytest.fixture()
def no_network(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every way out refuses, and says what was tried."""
    tried: list[str] = []

    def refuse(what: str) -> Any:
        def fail(*args: Any, **kwargs: Any) -> Any:
            tried.append(f"{what}{args[1:] if what == 'connect' else args[:1]}")
            raise NetworkUsed(f"network use: {what} {args!r}")
        return fail

    monkeypatch.setattr(socket.socket, "connect", refuse("connect"))
    monkeypatch.setattr(socket.socket, "connect_ex", refuse("connect"))
    monkeypatch.setattr(socket, "getaddrinfo", refuse("getaddrinfo"))
    monkeypatch.setattr(socket, "create_connection", refuse("create_connection"))
    monkeypatch.setattr(spacy.cli, "download", refuse("spacy.cli.download"))
    return tried


def _strict_ner() -> Policy:
    base = load_policy("default").model_dump()
    base["ner"] = "always"
    return Policy.model_validate(base)


def test_emails_urls_and_names_are_found_without_any_network(no_network: list[str]) -> None:
    # built here, inside the fixture: the suffix list and the spaCy model load under it
    redactor = PolicyRedactor(_strict_ner(), None).load()
    title = ("Mail jo.doe@example.co.uk or visit https://news.example.org/x — Kwame Mensah "
             "in Helsinki")
    rec = ResultRecord(
        result=Classification(doc_id="a", source="", label="World", score=0.9,
                              scores={"World": 0.9}, model=ModelRef(name="m", version="1",
                                                                    weights_sha256="0" * 64)),
        position=InputPosition(kind="file", file="f", line=1), input_sha256="0" * 64,
        title=title)
    out = redactor.redact(WriteBatch(run_id="r", results=[rec])).results[0]
    assert out.title == "Mail <EMAIL_ADDRESS> or visit <URL> — <PERSON> in <LOCATION>"
    assert no_network == []


def test_a_missing_ner_model_is_refused_not_downloaded(no_network: list[str]) -> None:
    base = _strict_ner().model_dump()
    base["ner_model"] = "en_core_web_lg"  # Presidio's default: not installed here
    redactor = PolicyRedactor(Policy.model_validate(base), None)
    with pytest.raises(PolicyError, match="'en_core_web_lg' is not installed"):
        redactor.load()
    assert no_network == []


def test_the_fixture_catches_what_tldextract_does_by_default(no_network: list[str]) -> None:
    """The control: tldextract's default extractor (no cache yet) asks the network for the
    Public Suffix List; ours (detect._offline_tld_extractor) never does."""
    import tldextract

    from docstream.privacy.detect import _offline_tld_extractor

    assert _offline_tld_extractor()("jo@example.co.uk").suffix == "co.uk"
    assert no_network == []
    with pytest.raises(NetworkUsed, match=r"publicsuffix\.org"):
        tldextract.TLDExtract(cache_dir=None)("jo@example.co.uk")
    assert no_network == ["getaddrinfo('publicsuffix.org',)"]
