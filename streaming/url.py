"""`kafka://HOST:PORT[,HOST:PORT…]/TOPIC[,TOPIC…]?group=NAME` → a typed address."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import parse_qs, unquote

from .errors import KafkaUrlError

DEFAULT_PORT = 9092
DEFAULT_GROUP = "docstream"
_TOPIC = re.compile(r"^[A-Za-z0-9._-]{1,249}$")
_GROUP = re.compile(r"^[A-Za-z0-9._-]{1,200}$")
_HOST = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+)$")
EXAMPLE = "kafka://127.0.0.1:9092/posts?group=docstream"


@dataclass(frozen=True)
class KafkaUrl:
    """A parsed kafka:// URL.

    Example:
        >>> u = parse_kafka_url("kafka://127.0.0.1:9092/news,social?group=g1")
        >>> u.bootstrap, u.topics, u.group
        ('127.0.0.1:9092', ('news', 'social'), 'g1')
    """

    servers: tuple[str, ...]
    topics: tuple[str, ...]
    group: str = DEFAULT_GROUP

    @property
    def bootstrap(self) -> str:
        return ",".join(self.servers)

    def __str__(self) -> str:
        return f"kafka://{self.bootstrap}/{','.join(self.topics)}?group={self.group}"


def _bad(url: str, what: str) -> KafkaUrlError:
    return KafkaUrlError(f"bad Kafka URL {url!r}: {what}; expected e.g. {EXAMPLE}")


def _server(url: str, part: str) -> str:
    host, sep, port = part.rpartition(":") if not part.endswith("]") else (part, "", "")
    if not sep:
        host, port = part, str(DEFAULT_PORT)
    if not host or not _HOST.match(host):
        raise _bad(url, f"{host or part!r} is not a host name")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise _bad(url, f"port {port!r} is not a number between 1 and 65535")
    return f"{host}:{int(port)}"


def parse_kafka_url(url: str, *, single_topic: bool = False,
                    allow_group: bool = True) -> KafkaUrl:
    """Parse and validate; raises KafkaUrlError naming the bad part and an example."""
    if not url.startswith("kafka://"):
        raise _bad(url, "it must start with kafka://")
    rest = url[len("kafka://"):]
    rest, _, query = rest.partition("?")
    netloc, slash, path = rest.partition("/")
    if not netloc:
        raise _bad(url, "no broker address (HOST:PORT) after kafka://")
    servers = tuple(_server(url, s.strip()) for s in netloc.split(",") if s.strip())
    if not servers:
        raise _bad(url, "no broker address (HOST:PORT) after kafka://")
    topics = tuple(unquote(t).strip() for t in path.split(",") if t.strip()) if slash else ()
    if not topics:
        raise _bad(url, "no topic after the broker address")
    for t in topics:
        if not _TOPIC.match(t) or t in (".", ".."):
            raise _bad(url, f"topic {t!r} is not a legal Kafka topic name "
                       "(letters, digits, '.', '_', '-', at most 249)")
    if len(set(topics)) != len(topics):
        raise _bad(url, "a topic is named twice")
    if single_topic and len(topics) != 1:
        raise _bad(url, f"name exactly one topic here, not {len(topics)}")
    try:
        params = parse_qs(query, keep_blank_values=True, strict_parsing=bool(query))
    except ValueError as e:
        raise _bad(url, f"cannot parse the query {query!r}") from e
    unknown = set(params) - {"group"}
    if unknown:
        raise _bad(url, f"unknown parameter(s) {', '.join(sorted(unknown))}; only group= is known")
    group = DEFAULT_GROUP
    if "group" in params:
        if not allow_group:
            raise _bad(url, "group= has no meaning here")
        values = params["group"]
        if len(values) != 1 or not _GROUP.match(values[0]):
            raise _bad(url, f"group {values!r} must be one name of letters, digits, '.', '_', '-'")
        group = values[0]
    return KafkaUrl(servers=servers, topics=topics, group=group)
