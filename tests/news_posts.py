"""Seeded, generated news-like posts with the four topic labels, for tests.

Every word here was written for this project: per-topic sentence templates and vocabulary,
plus topic-neutral sentences (quotes, abbreviations, numbers) that all topics share, so a
tiny model has to learn the topic words rather than a template. No third-party dataset text
is used or copied; the same seed always gives the same texts, byte for byte.

- `news_post(rng, label)`: a 2-4 sentence post (~30-60 words);
- `long_post(rng, label, min_words)`: a multi-paragraph document of one topic;
- `post_texts(n, seed)`: n unlabelled post texts of mixed topics (streaming tests);
- `labelled_rows(...)` / `write_labelled(path, ...)`: `{"id", "text", "label", "split"}`
  rows with `train` and `test` splits and a share of long documents.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

LABELS = ["World", "Sports", "Business", "Sci/Tech"]

# Slots shared by every topic; {name} etc. are filled per sentence.
SHARED_SLOTS: dict[str, list[str]] = {
    "day": ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"],
    "month": ["Jan.", "Feb.", "March", "April", "June", "Aug.", "Sept.", "Oct.", "Nov.", "Dec."],
    "name": ["Mr. Okafor", "Ms. Lindqvist", "Dr. Tanaka", "Mr. Ferreira", "Ms. Haddad",
             "Prof. Novak", "Mr. Brennan", "Ms. Castellano", "Dr. Mensah", "Mr. J. R. Whitlow"],
    "outlet": ["the Daily Ledger", "Metro Herald", "the Evening Courier", "Global Dispatch",
               "the Morning Post", "Wire Services"],
    "num": ["two", "three", "four", "five", "six", "12", "18", "24", "40", "75", "120"],
    "pct": ["1.5", "2", "3.2", "4", "6.8", "9", "11", "15"],
    "city": ["Lisbon", "Nairobi", "Osaka", "Toronto", "Santiago", "Warsaw", "Cairo", "Perth"],
}

# Sentences any topic can carry: they say nothing about the topic.
NEUTRAL: list[str] = [
    "{name} said the decision was \"long overdue\" and would be reviewed again by {month} 15.",
    "Further details are expected on {day}, according to {outlet}.",
    "The announcement was made late on {day} in {city}.",
    "\"We will wait and see,\" {name} told reporters.",
    "Officials declined to comment further.",
    "It was not immediately clear what happens next.",
    "The report, first published by {outlet}, was later confirmed by {name}.",
    "A spokesperson for the group said talks would resume after {num} days.",
    "Reaction was mixed, and {name} called it \"a first step, not the last.\"",
    "More than {num} people attended the briefing at 10 a.m. on {day}.",
    "Was it enough? {name} said it was too early to tell.",
    "The figures were revised by {pct} percent from an earlier estimate.",
]

TOPICS: dict[str, dict[str, list[str]]] = {
    "World": {
        "templates": [
            "{actor} {act} {region} on {day}, raising hopes of an end to the {conflict}.",
            "{actor} warned that the {conflict} in {region} could spread across the border.",
            "Thousands of {people} fled {region} as fighting between {side} and government forces "
            "intensified.",
            "The {body} voted to extend its peacekeeping mission in {region} for {num} months.",
            "Voters in {region} went to the polls in a {poll} seen as a test for the ruling party.",
            "{actor} met envoys from {region} to discuss {issue} and the release of prisoners.",
            "The embassy in {city} was closed after protests over {issue} turned violent.",
            "{actor} imposed new sanctions on {region}, citing {issue}.",
            "Diplomats said a draft {treaty} on {issue} could be signed within {num} weeks.",
        ],
        "actor": ["The prime minister", "The foreign minister", "The president", "A UN envoy",
                  "Opposition leaders", "The ruling coalition", "The defence ministry",
                  "Regional mediators", "The interior minister", "The Security Council"],
        "act": ["signed a ceasefire with rebels in", "opened peace talks with", "withdrew troops "
                "from", "expelled diplomats from", "called for elections in", "sent aid convoys "
                "to", "reopened the border with", "condemned the coup in"],
        "region": ["the northern provinces", "the disputed border region", "the coastal enclave",
                   "the breakaway republic", "the capital's outskirts", "the southern highlands",
                   "the island nation", "the neighbouring state"],
        "conflict": ["civil war", "insurgency", "border dispute", "ethnic conflict", "standoff",
                     "refugee crisis"],
        "people": ["refugees", "civilians", "villagers", "families", "displaced residents"],
        "side": ["rebels", "militia fighters", "separatists", "insurgents"],
        "body": ["Security Council", "African Union", "parliament", "regional bloc"],
        "poll": ["presidential election", "referendum", "parliamentary vote", "runoff"],
        "issue": ["human rights abuses", "the nuclear programme", "refugee returns",
                  "war crimes", "disputed election results", "humanitarian access"],
        "treaty": ["treaty", "peace accord", "ceasefire agreement", "resolution"],
    },
    "Sports": {
        "templates": [
            "{team} beat {team2} {score} to {result}.",
            "{player} scored {twice} as {team} came from behind against {team2}.",
            "The {coach} of {team} was sacked after {num} straight defeats in the {league}.",
            "{player} won the {event} final in straight sets to claim a third title.",
            "{team} clinched the {league} title with a {score} win on {day}.",
            "An injured {player} will miss the {event} after tearing a hamstring in training.",
            "{player} set a course record in the {event}, finishing {num} shots clear.",
            "Fans at the stadium in {city} watched {team} lose on penalties in the {event}.",
            "{team} signed the striker on a {num}-year contract before the transfer deadline.",
        ],
        "team": ["United", "the Rovers", "the Yankees", "the Lakers", "Real Madrid",
                 "the All Blacks", "City", "the Cardinals", "the national side", "Athletic"],
        "team2": ["the defending champions", "their local rivals", "the league leaders",
                  "the visitors", "the Red Sox", "the Celtics", "Juventus", "the Wallabies"],
        "score": ["3-1", "2-0", "4-3", "1-0", "24-21", "102-98", "6-4"],
        "result": ["reach the cup semifinals", "stay top of the table", "win the series",
                   "end a losing streak", "qualify for the playoffs"],
        "player": ["The veteran goalkeeper", "The young striker", "The world number one",
                   "The captain", "The Olympic sprinter", "The quarterback", "The golfer",
                   "The tennis champion"],
        "twice": ["twice", "a hat-trick", "in stoppage time", "the winning goal"],
        "coach": ["manager", "head coach", "coach"],
        "league": ["Premier League", "Champions League", "NBA", "Super Rugby", "World Series",
                   "national championship"],
        "event": ["Open", "Grand Prix", "World Cup", "Olympic", "Masters", "marathon",
                  "Wimbledon"],
    },
    "Business": {
        "templates": [
            "Shares of {company} {moved} {pct} percent after the company reported {results}.",
            "{company} agreed to buy {target} for ${bn} billion in cash and stock.",
            "The central bank {rates}, citing {macro}.",
            "Oil prices {moved} to ${price} a barrel as {macro} weighed on markets.",
            "{company} will cut {num} hundred jobs to reduce costs, its chief executive said.",
            "Investors sold {asset} after data showed {macro}.",
            "Quarterly profit at {company} rose to ${bn} billion on strong {segment} sales.",
            "Regulators fined {company} ${bn} billion over {misconduct}.",
            "The {index} closed {moved2} on {day} as {macro} lifted {asset}.",
        ],
        "company": ["the retailer", "the carmaker", "the airline", "the bank", "the brewer",
                    "the insurer", "the steelmaker", "the supermarket chain", "the oil major"],
        "target": ["a rival grocer", "a regional lender", "a logistics firm", "a pension "
                   "manager", "its biggest supplier", "a budget airline"],
        "moved": ["fell", "rose", "jumped", "slid", "climbed", "dropped"],
        "moved2": ["higher", "lower", "flat", "at a record high"],
        "results": ["weaker-than-expected earnings", "record quarterly revenue",
                    "a surprise loss", "higher dividends", "lower profit margins"],
        "bn": ["1.2", "2.5", "4", "7.8", "12", "24", "31"],
        "price": ["68", "74", "81", "92"],
        "rates": ["raised interest rates by a quarter point", "left interest rates unchanged",
                  "cut its benchmark rate"],
        "macro": ["rising inflation", "slowing consumer spending", "a stronger dollar",
                  "weak factory orders", "higher bond yields", "a jump in unemployment claims"],
        "asset": ["bank stocks", "government bonds", "the dollar", "retail shares",
                  "energy stocks", "gold"],
        "segment": ["wholesale", "online", "mortgage", "premium", "export"],
        "misconduct": ["misleading investors", "price fixing", "accounting errors",
                       "breaking competition rules"],
        "index": ["Dow", "Nasdaq", "FTSE 100", "stock market", "Nikkei"],
    },
    "Sci/Tech": {
        "templates": [
            "Researchers {found} a {thing} that could {benefit}, according to a study in {journal}.",
            "{firm} unveiled a {device} with a faster {chip} and longer battery life.",
            "The space agency launched a {probe} to study {target} on {day}.",
            "A software update fixed a {flaw} that let attackers {attack}.",
            "Scientists sequenced the genome of {organism} and identified {num} new genes.",
            "{firm} released an open-source {software} for {purpose}.",
            "Engineers tested a {device} powered by {energy} in {city}.",
            "Astronomers spotted {target} using a {telescope}.",
            "{firm} said its {software} now runs on {num} million {device}s worldwide.",
        ],
        "found": ["discovered", "developed", "tested", "designed", "engineered"],
        "thing": ["protein", "battery material", "vaccine candidate", "quantum sensor",
                  "algorithm", "superconductor", "enzyme"],
        "benefit": ["store more energy", "speed up drug discovery", "detect tumours earlier",
                    "reduce data centre power use", "cut carbon emissions"],
        "journal": ["Nature", "Science", "a physics journal", "a medical journal"],
        "firm": ["The chipmaker", "The software giant", "A startup", "The search company",
                 "The phone maker", "The robotics lab"],
        "device": ["smartphone", "laptop", "robot", "satellite", "headset", "server",
                   "drone", "tablet"],
        "chip": ["processor", "graphics chip", "memory chip", "modem"],
        "probe": ["probe", "rover", "orbiter", "space telescope", "lander"],
        "target": ["a distant comet", "the moons of Jupiter", "an exoplanet", "the Martian "
                   "surface", "a black hole", "the solar wind", "a new galaxy"],
        "flaw": ["security flaw", "browser bug", "encryption weakness", "memory leak"],
        "attack": ["steal passwords", "take over computers", "read private messages",
                   "crash the network"],
        "organism": ["a deep-sea bacterium", "the wheat plant", "a rare frog",
                     "a drug-resistant virus"],
        "software": ["operating system", "programming language", "database", "web browser",
                     "machine learning model", "search engine"],
        "purpose": ["speech recognition", "image search", "cloud computing", "genetic analysis",
                    "weather forecasting"],
        "energy": ["solar cells", "hydrogen fuel", "a new lithium battery", "wireless power"],
        "telescope": ["radio telescope", "infrared camera", "space observatory"],
    },
}


# Topics whose sentences turn up in a post of another topic.
NEIGHBOURS: dict[str, list[str]] = {
    "World": ["Business", "Sports"],
    "Sports": ["World", "Business"],
    "Business": ["Sci/Tech", "World"],
    "Sci/Tech": ["Business", "World"],
}
NEUTRAL_SHARE = 0.25
CROSS_SHARE = 0.25


def _fill(rng: random.Random, template: str, slots: dict[str, list[str]]) -> str:
    """Replace every {slot} in `template` with a random choice from `slots`/SHARED_SLOTS."""
    out: list[str] = []
    rest = template
    while "{" in rest:
        head, _, tail = rest.partition("{")
        name, _, rest = tail.partition("}")
        out.append(head)
        options = slots.get(name) or SHARED_SLOTS[name]
        out.append(rng.choice(options))
    out.append(rest)
    text = "".join(out)
    return text[0].upper() + text[1:]


def topic_sentence(rng: random.Random, label: str) -> str:
    topic = TOPICS[label]
    return _fill(rng, rng.choice(topic["templates"]), topic)


def neutral_sentence(rng: random.Random) -> str:
    return _fill(rng, rng.choice(NEUTRAL), {})


def news_post(rng: random.Random, label: str) -> str:
    """A short post: a sentence on its topic, then 1-3 sentences of which about half are on
    the topic, a quarter neutral and a quarter on a neighbouring topic (a sports club's
    shares, a tech firm's fine), so that some posts are ambiguous, as real news is."""
    sentences = [topic_sentence(rng, label)]
    for _ in range(rng.randint(1, 3)):
        draw = rng.random()
        if draw < NEUTRAL_SHARE:
            sentences.append(neutral_sentence(rng))
        elif draw < NEUTRAL_SHARE + CROSS_SHARE:
            sentences.append(topic_sentence(rng, rng.choice(NEIGHBOURS[label])))
        else:
            sentences.append(topic_sentence(rng, label))
    return " ".join(sentences)


def long_post(rng: random.Random, label: str, min_words: int = 400) -> str:
    """A document of at least `min_words` words on one topic, in paragraphs."""
    paragraphs: list[str] = []
    words = 0
    while words < min_words:
        paragraph = news_post(rng, label)
        paragraphs.append(paragraph)
        words += len(paragraph.split())
    return "\n\n".join(paragraphs)


def post_texts(n: int, seed: int = 0) -> list[str]:
    """n post texts, topics cycling through LABELS in a seeded order."""
    rng = random.Random(seed)
    return [news_post(rng, LABELS[rng.randrange(len(LABELS))]) for _ in range(n)]


def labelled_rows(train_per_label: int = 100, test_per_label: int = 50, seed: int = 0,
                  long_share: float = 0.05, long_words: int = 400) -> list[dict[str, str]]:
    """Labelled rows in a seeded order; `long_share` of each split's rows are long documents."""
    rng = random.Random(seed)
    rows: list[dict[str, str]] = []
    for split, per_label in (("train", train_per_label), ("test", test_per_label)):
        n_long = round(per_label * long_share)
        items = [(label, i < n_long) for label in LABELS for i in range(per_label)]
        rng.shuffle(items)
        for i, (label, is_long) in enumerate(items, start=1):
            text = long_post(rng, label, long_words) if is_long else news_post(rng, label)
            rows.append({"id": f"gen-{split}-{i:05d}", "text": text, "label": label,
                         "split": split})
    return rows


def write_labelled(path: Path, train_per_label: int = 100, test_per_label: int = 50,
                   seed: int = 0) -> Path:
    """Write `labelled_rows(...)` as JSON Lines to `path` and return it."""
    rows = labelled_rows(train_per_label, test_per_label, seed)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
                    encoding="utf-8")
    return path
