"""The labelled PII evaluation set: synthetic posts with planted PII, hand-written hard cases,
and clean posts. Every value here is made up for this project (fictional names, reserved or
random numbers, example.* domains); nothing is copied from a dataset.

`python -m tests.privacy.pii_cases` rewrites tests/privacy/pii_cases.jsonl from the seed
(tests/privacy/test_pii_eval.py checks that the committed file is what this writes).

One JSON object a line: {"id", "group": "planted" | "hard" | "clean", "text",
"pii": [{"type", "value"}], "ner_labelled": bool}. Each value occurs once in its text.
`ner_labelled` is false for the clean posts made by tests/news_posts.py: they hold names and
cities (the news generator's), which are not labelled, so they count for pattern types only.
"""

from __future__ import annotations

import json
import random
import string
from pathlib import Path

from tests.news_posts import post_texts

PATH = Path(__file__).with_name("pii_cases.jsonl")
SEED = 20261203

FIRST = ["Amara", "Tomasz", "Ingrid", "Kwame", "Lucia", "Haruto", "Fatima", "Oskar", "Priya",
         "Mateo", "Nadia", "Elias", "Zanele", "Rafael", "Signe", "Dmitri", "Aiko", "Callum"]
LAST = ["Okonkwo", "Brzezinski", "Halvorsen", "Mensah", "Ferraro", "Takeda", "Haddad", "Lindgren",
        "Raman", "Quispe", "Petrova", "Vasquez", "Dlamini", "Moreau", "Eriksen", "Volkov"]
CITIES = ["Lisbon", "Nairobi", "Osaka", "Toronto", "Santiago", "Warsaw", "Cairo", "Perth",
          "Bergen", "Accra", "Montevideo", "Tbilisi"]
COUNTRIES = ["Portugal", "Kenya", "Japan", "Canada", "Chile", "Poland", "Egypt", "Norway"]
DOMAINS = ["example.com", "example.org", "mail.example.net", "example.co.uk", "news.example.com"]
HANDLES = ["daily_ledger", "metro_herald", "kwame_reports", "ingrid.h", "the_courier", "p_raman"]

TEMPLATES = {
    "EMAIL_ADDRESS": ["Readers can send tips to {v} before Friday.", "Contact {v} for the full "
                      "report.", "Questions? Email {v} and we will reply.", "Press office: {v}"],
    "PHONE_NUMBER": ["Call {v} to book tickets, organisers said.", "The hotline ({v}) opens at "
                     "9 a.m.", "Witnesses were asked to phone {v}.", "Text {v} for updates."],
    "CREDIT_CARD": ["Scammers used card {v} at three shops.", "A card numbered {v} was found "
                    "on the bus.", "Refund sent to {v} on Monday."],
    "IBAN_CODE": ["Donations go to IBAN {v}, the charity said.", "Pay the fee to {v} by June.",
                  "The account {v} was frozen by the bank."],
    "IP_ADDRESS": ["The attack came from {v}, the report said.", "Logs show logins from {v} "
                   "overnight.", "The server at {v} went offline."],
    "US_SSN": ["The form listed SSN {v} in plain text.", "His social security number {v} was "
               "leaked.", "Applicants must give an SSN such as {v}."],
    "URL": ["Read more at {v} today.", "The full statement is on {v}.", "Tickets: {v}"],
    "SOCIAL_HANDLE": ["Follow {v} for live updates.", "Thanks to {v} for the photo.",
                      "{v} posted the video first."],
    "PERSON": ["{v} said the talks would resume on Monday.", "The award went to {v} for her "
               "reporting.", "Officials named {v} as the new chair."],
    "LOCATION": ["Protests spread to {v} on Tuesday.", "Flights to {v} were cancelled.",
                 "The summit will be held in {v} next year."],
}


def _luhn_complete(prefix: str, length: int, rng: random.Random) -> str:
    digits = prefix + "".join(rng.choice(string.digits) for _ in range(length - len(prefix) - 1))
    total = 0
    for i, c in enumerate(reversed(digits)):
        d = int(c)
        if i % 2 == 0:
            d = d * 2 - 9 if d * 2 > 9 else d * 2
        total += d
    return digits + str((10 - total % 10) % 10)


def credit_card(rng: random.Random) -> str:
    prefix, length = rng.choice([("4", 16), ("51", 16), ("55", 16), ("37", 15), ("6011", 16)])
    n = _luhn_complete(prefix, length, rng)
    sep = rng.choice([" ", "-", ""])
    groups = [n[:4], n[4:10], n[10:]] if length == 15 else [n[i:i + 4] for i in range(0, 16, 4)]
    return sep.join(groups)


def iban(rng: random.Random) -> str:
    country, bban_len = rng.choice([("GB", 18), ("DE", 18), ("FR", 23), ("NL", 14), ("ES", 20)])
    if country in ("GB", "NL"):
        bban = "".join(rng.choice(string.ascii_uppercase) for _ in range(4)) + "".join(
            rng.choice(string.digits) for _ in range(bban_len - 4))
    else:
        bban = "".join(rng.choice(string.digits) for _ in range(bban_len))
    numeric = "".join(str(int(c, 36)) for c in bban + country + "00")
    check = 98 - int(numeric) % 97
    code = f"{country}{check:02d}{bban}"
    return " ".join(code[i:i + 4] for i in range(0, len(code), 4)) if rng.random() < 0.6 else code


def phone(rng: random.Random) -> str:
    d = lambda n: "".join(rng.choice(string.digits) for _ in range(n))  # noqa: E731
    exch = str(rng.randint(201, 989))
    return rng.choice([
        f"({rng.choice(['212', '415', '617', '312'])}) {exch}-{d(4)}",
        f"{rng.choice(['206', '303', '512'])}-{exch}-{d(4)}",
        f"+1 {rng.choice(['646', '213', '305'])} {exch} {d(4)}",
        f"+44 20 7{d(3)} {d(4)}", f"020 7{d(3)} {d(4)}", f"+44 7911 1{d(5)}",
        f"+49 30 {rng.randint(2, 9)}{d(6)}", f"+33 1 {d(2)} {d(2)} {d(2)} {d(2)}",
        f"+91 98{d(3)} {d(5)}", f"+61 2 9{d(3)} {d(4)}", f"+81 3-5{d(3)}-{d(4)}",
        f"+55 11 9{d(4)}-{d(4)}",
    ])


def ssn(rng: random.Random) -> str:
    area = rng.choice([n for n in range(101, 666) if n not in (123,)])
    return f"{area:03d}-{rng.randint(10, 99):02d}-{rng.randint(1000, 9999):04d}"


def ip(rng: random.Random) -> str:
    if rng.random() < 0.8:
        return ".".join(str(x) for x in (rng.randint(11, 223), rng.randint(0, 255),
                                         rng.randint(0, 255), rng.randint(1, 254)))
    return f"2001:db8:{rng.randint(1, 0xffff):x}::{rng.randint(1, 0xffff):x}"


def email(rng: random.Random) -> str:
    f, last = rng.choice(FIRST).lower(), rng.choice(LAST).lower()
    local = rng.choice([f"{f}.{last}", f"{f[0]}.{last}{rng.randint(1, 99)}", f"{f}_{last}",
                        f"{f}+news"])
    return f"{local}@{rng.choice(DOMAINS)}"


def url(rng: random.Random) -> str:
    path = rng.choice(["/story/2026/budget", "/p?id=4471", "/live", "/en/report.html"])
    return rng.choice([f"https://www.example-news.com{path}", f"http://blog.example.org{path}",
                       "www.example-shop.net/deals", f"https://example.io{path}"])


def value(kind: str, rng: random.Random) -> str:
    return {
        "EMAIL_ADDRESS": email, "PHONE_NUMBER": phone, "CREDIT_CARD": credit_card,
        "IBAN_CODE": iban, "IP_ADDRESS": ip, "US_SSN": ssn, "URL": url,
        "SOCIAL_HANDLE": lambda r: "@" + r.choice(HANDLES),
        "PERSON": lambda r: f"{r.choice(FIRST)} {r.choice(LAST)}",
        "LOCATION": lambda r: r.choice(CITIES + COUNTRIES),
    }[kind](rng)


def planted(n_per_type: int, rng: random.Random) -> list[dict]:
    """Posts of 1-3 planted values of random types, within a neutral news sentence or two."""
    fillers = post_texts(400, seed=SEED)
    clean_fillers = [t for t in fillers if "Mr." not in t and "Ms." not in t and "Dr." not in t
                     and "Prof." not in t and not any(c in t for c in CITIES)]
    kinds = list(TEMPLATES)
    rows = []
    for i in range(n_per_type * len(kinds)):
        chosen = [kinds[i % len(kinds)], *rng.sample(kinds, rng.choice([0, 0, 1, 2]))]
        parts, pii = [], []
        for kind in dict.fromkeys(chosen):
            v = value(kind, rng)
            parts.append(rng.choice(TEMPLATES[kind]).format(v=v))
            pii.append({"type": kind, "value": v})
        filler = rng.choice(clean_fillers).split(". ")[0].rstrip(".") + "."
        parts.insert(rng.randint(0, len(parts)), filler)
        text = " ".join(parts)
        if all(text.count(p["value"]) == 1 for p in pii):
            rows.append({"id": f"planted-{i:04d}", "group": "planted", "text": text, "pii": pii,
                         "ner_labelled": True})
    return rows


def _p(kind: str, *values: str) -> list[dict]:
    return [{"type": kind, "value": v} for v in values]


# (text, pii): written by hand; the hard part of each is in its comment
HARD: list[tuple[str, list[dict]]] = [
    # obfuscated emails
    ("Send your letters to john at example dot com by Monday.",
     _p("EMAIL_ADDRESS", "john at example dot com")),
    ("Tips: jane.doe [at] example [dot] org, or leave a message.",
     _p("EMAIL_ADDRESS", "jane.doe [at] example [dot] org")),
    ("mail me: bob(at)example(dot)net", _p("EMAIL_ADDRESS", "bob(at)example(dot)net")),
    ("Complaints to support AT example DOT co DOT uk please",
     _p("EMAIL_ADDRESS", "support AT example DOT co DOT uk")),
    ("Reach the editor, k.mensah {at} example {dot} com, before noon.",
     _p("EMAIL_ADDRESS", "k.mensah {at} example {dot} com")),
    ("Write to First.Last+tips@sub.example.co.uk for a copy.",
     _p("EMAIL_ADDRESS", "First.Last+tips@sub.example.co.uk")),
    ("Contact: ana-maria.quispe@example.com.", _p("EMAIL_ADDRESS", "ana-maria.quispe@example.com")),
    # international phone formats
    ("Berlin office: +49 (0)30 901820, weekdays only.",
     _p("PHONE_NUMBER", "+49 (0)30 901820") + _p("LOCATION", "Berlin")),
    ("From abroad dial 0049 30 901820.", _p("PHONE_NUMBER", "0049 30 901820")),
    ("Paris desk +33 (0)1 42 68 53 00.",
     _p("PHONE_NUMBER", "+33 (0)1 42 68 53 00") + _p("LOCATION", "Paris")),
    ("Tokyo bureau: +81 3 1234 5678", _p("PHONE_NUMBER", "+81 3 1234 5678")
     + _p("LOCATION", "Tokyo")),
    ("Beijing line +86 10 6532 1234 is busy.",
     _p("PHONE_NUMBER", "+86 10 6532 1234") + _p("LOCATION", "Beijing")),
    ("Moscow: +7 495 123-45-67.", _p("PHONE_NUMBER", "+7 495 123-45-67")
     + _p("LOCATION", "Moscow")),
    ("Cape Town office +27 21 123 4567",
     _p("PHONE_NUMBER", "+27 21 123 4567") + _p("LOCATION", "Cape Town")),
    ("Dublin: +353 1 234 5678", _p("PHONE_NUMBER", "+353 1 234 5678")
     + _p("LOCATION", "Dublin")),
    ("Sydney readers can call (02) 9876 5432.",
     _p("PHONE_NUMBER", "(02) 9876 5432") + _p("LOCATION", "Sydney")),
    ("London desk: 020 7946 0958", _p("PHONE_NUMBER", "020 7946 0958")
     + _p("LOCATION", "London")),
    ("tel: 212.555.0199 (after 6pm)", _p("PHONE_NUMBER", "212.555.0199")),
    ("Mumbai helpline 022 2345 6789.", _p("PHONE_NUMBER", "022 2345 6789")
     + _p("LOCATION", "Mumbai")),
    ("See section 4.2 of the U.S. and U.K. agreement, e.g. the annex.",
     _p("LOCATION", "U.S.", "U.K.")),
    ("Call 1-800-555-0123 toll free.", _p("PHONE_NUMBER", "1-800-555-0123")),
    ("WhatsApp +55 11 98765-4321 for the tour.", _p("PHONE_NUMBER", "+55 11 98765-4321")),
    # names that are common words
    ("Rose said the rose garden would reopen in spring.", _p("PERSON", "Rose")),
    ("Bill Halvorsen voted against the bill on Tuesday.", _p("PERSON", "Bill Halvorsen")),
    ("Will Okafor will lead the delegation.", _p("PERSON", "Will Okafor")),
    ("Mark Lindgren marked the anniversary with a speech.", _p("PERSON", "Mark Lindgren")),
    ("Grace Mensah thanked voters for their grace and patience.", _p("PERSON", "Grace Mensah")),
    ("Hope Dlamini said there was little hope of a deal.", _p("PERSON", "Hope Dlamini")),
    ("Summer Takeda spent the summer in Osaka.",
     _p("PERSON", "Summer Takeda") + _p("LOCATION", "Osaka")),
    ("Jack Moreau used a jack to lift the car.", _p("PERSON", "Jack Moreau")),
    ("Bill said the bill was too high.", _p("PERSON", "Bill")),
    ("Ms. Rose Halvorsen, 54, of Bergen, was unhurt.",
     _p("PERSON", "Rose Halvorsen") + _p("LOCATION", "Bergen")),
    ("Dr. Aiko Takeda and Prof. Elias Moreau shared the prize.",
     _p("PERSON", "Aiko Takeda", "Elias Moreau")),
    ("Paris Hilton-Vasquez visited Lyon on Sunday.",
     _p("PERSON", "Paris Hilton-Vasquez") + _p("LOCATION", "Lyon")),
    ("Flooding hit Georgia and Jordan, officials said.", _p("LOCATION", "Georgia", "Jordan")),
    ("lowercase names like tomasz brzezinski are hard", _p("PERSON", "tomasz brzezinski")),
    # social handles and lookalikes
    ("Shoutout to @kwame_reports and @the.courier!", _p("SOCIAL_HANDLE", "@kwame_reports",
                                                        "@the.courier")),
    ("Mastodon: @ingrid@example.social", _p("SOCIAL_HANDLE", "@ingrid@example.social")),
    # cards, IBANs, SSNs, IPs written differently
    ("Card no. 4111-1111-1111-1111 (test) was declined.",
     _p("CREDIT_CARD", "4111-1111-1111-1111")),
    ("Amex 3714 496353 98431 expired.", _p("CREDIT_CARD", "3714 496353 98431")),
    ("iban: de89 3704 0044 0532 0130 00", _p("IBAN_CODE", "de89 3704 0044 0532 0130 00")),
    ("IBAN GB82WEST12345698765432 belongs to the club.",
     _p("IBAN_CODE", "GB82WEST12345698765432")),
    ("SSN 536 22 8741 appeared on the letter.", _p("US_SSN", "536 22 8741")),
    ("The leaked SSN was 536228741.", _p("US_SSN", "536228741")),
    ("Traffic from 2001:db8::ff00:42:8329 was blocked.", _p("IP_ADDRESS", "2001:db8::ff00:42:8329")),
    ("Proxy 10.0.0.254 served the page.", _p("IP_ADDRESS", "10.0.0.254")),
    ("Docs at docs.example.org/guide, mirror at https://example.net/m.",
     _p("URL", "docs.example.org/guide", "https://example.net/m")),
]

# hard negatives: nothing personal in them (tests false positives)
CLEAN_HARD = [
    "Emergency services answered 911 calls all night.",
    "Revenue reached 12,345,678 dollars in 2024, up 3.5% on 2023.",
    "Order #123456789 shipped on 2026-12-03 at 10:45.",
    "The update moves version 1.2.3 to 1.2.4 next week.",
    "ISBN 978-3-16-148410-0 is printed on the back cover.",
    "Investors still remember the dot com bubble.",
    "Meet me @ 5pm near the station.",
    "The score was 3-1 after 90 minutes; 45,000 fans watched.",
    "Prices: $1,299.99 for the laptop, £12.5bn for the project.",
    "The Rose Bowl drew 90,000 fans on Jan. 1.",
    "Amazon.com shares rose 4 percent on Friday.",
    "Temperatures hit 41.5C on 12/07/2025 in the south.",
    "The law, section 230, was debated for 6 hours.",
    "Flight BA2490 departs at 14:05 from gate 22.",
    "Call of Duty sold 1,000,000 copies in a week.",
    "A magnitude 6.1 quake struck at 03:14:15 local time.",
    "Tickets cost 20 euros at the door or 15 online.",
    "The bill passed 52 to 48 in the senate.",
    "He looked at the sky and saw a dot far away.",
]


def rows() -> list[dict]:
    rng = random.Random(SEED)
    out = planted(24, rng)
    for i, (text, pii) in enumerate(HARD):
        assert all(text.count(p["value"]) == 1 for p in pii), text
        out.append({"id": f"hard-{i:03d}", "group": "hard", "text": text, "pii": pii,
                    "ner_labelled": True})
    for i, text in enumerate(CLEAN_HARD):
        out.append({"id": f"clean-hard-{i:03d}", "group": "clean", "text": text, "pii": [],
                    "ner_labelled": True})
    for i, text in enumerate(post_texts(60, seed=SEED + 1)):
        out.append({"id": f"clean-news-{i:03d}", "group": "clean", "text": text, "pii": [],
                    "ner_labelled": False})
    return out


def render() -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows())


def load() -> list[dict]:
    return [json.loads(line) for line in PATH.read_text(encoding="utf-8").splitlines() if line]


if __name__ == "__main__":
    PATH.write_text(render(), encoding="utf-8")
    print(f"wrote {PATH} ({len(rows())} cases)")
