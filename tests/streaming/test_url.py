"""kafka:// URLs: what parses, and errors that say what to write instead."""

from __future__ import annotations

import pytest

from docstream.streaming.errors import KafkaUrlError
from docstream.streaming.url import DEFAULT_GROUP, parse_kafka_url


def test_full_url() -> None:
    u = parse_kafka_url("kafka://127.0.0.1:9092/news,social?group=g-1")
    assert u.servers == ("127.0.0.1:9092",)
    assert u.topics == ("news", "social")
    assert u.group == "g-1"
    assert str(u) == "kafka://127.0.0.1:9092/news,social?group=g-1"


def test_defaults_and_several_brokers() -> None:
    u = parse_kafka_url("kafka://k1,k2:9093/posts")
    assert u.bootstrap == "k1:9092,k2:9093"
    assert u.group == DEFAULT_GROUP


@pytest.mark.parametrize(
    "url, message",
    [
        ("http://h:9092/t", "must start with kafka://"),
        ("kafka:///t", "no broker address"),
        ("kafka://h:9092", "no topic"),
        ("kafka://h:9092/", "no topic"),
        ("kafka://h:99999/t", "port '99999'"),
        ("kafka://h:x/t", "port 'x'"),
        ("kafka://h:9092/bad topic", "not a legal Kafka topic name"),
        ("kafka://h:9092/t,t", "named twice"),
        ("kafka://h:9092/t?grp=x", "unknown parameter(s) grp"),
        ("kafka://h:9092/t?group=a&group=b", "must be one name"),
        ("kafka://h:9092/t?group=", "must be one name"),
        ("kafka://bad host:9092/t", "not a host name"),
    ],
)
def test_errors_name_the_problem_and_an_example(url: str, message: str) -> None:
    with pytest.raises(KafkaUrlError) as e:
        parse_kafka_url(url)
    assert message in str(e.value)
    assert "expected e.g. kafka://" in str(e.value)


def test_single_topic_and_no_group_for_produce() -> None:
    assert parse_kafka_url("kafka://h/t", single_topic=True, allow_group=False).topics == ("t",)
    with pytest.raises(KafkaUrlError, match="exactly one topic"):
        parse_kafka_url("kafka://h/a,b", single_topic=True)
    with pytest.raises(KafkaUrlError, match="no meaning here"):
        parse_kafka_url("kafka://h/a?group=g", allow_group=False)
