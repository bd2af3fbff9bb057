from __future__ import annotations

import pytest
from pydantic import ValidationError

from docstream.schemas import Classification, ModelRef, Post
from docstream.schemas.post import forbidden_character


def test_minimal_post_is_valid() -> None:
    post = Post.model_validate({"id": "p1", "text": "Markets rallied."})
    assert post.source_key == ""
    assert post.kind is None


def test_full_post_is_valid() -> None:
    post = Post.model_validate({
        "id": "p1", "text": "x", "title": "t", "source": "wire", "kind": "social",
        "lang": "en", "created_at": "2026-11-20T09:15:00Z", "metadata": {"a": 1},
    })
    assert post.created_at is not None and post.created_at.year == 2026
    assert post.source_key == "wire"


@pytest.mark.parametrize(
    "data, field",
    [
        ({"text": "x"}, "id"),
        ({"id": "", "text": "x"}, "id"),
        ({"id": "x" * 257, "text": "x"}, "id"),
        ({"id": "p"}, "text"),
        ({"id": "p", "text": "   "}, "text"),
        ({"id": "p", "text": "x" * 100_001}, "text"),
        ({"id": "p", "text": "x", "kind": "blog"}, "kind"),
        ({"id": "p", "text": "x", "created_at": "yesterday"}, "created_at"),
        ({"id": "p", "text": "x", "metadata": [1]}, "metadata"),
    ],
)
def test_invalid_posts_name_the_field(data: dict, field: str) -> None:
    with pytest.raises(ValidationError) as err:
        Post.model_validate(data)
    assert field in str(err.value)


@pytest.mark.parametrize("field", ["id", "text", "title", "source", "lang"])
@pytest.mark.parametrize("bad", ["a\x00b", "a\ud800", "\udfffa", "a\ude00\ud83d"])
def test_stored_strings_refuse_nul_and_lone_surrogates(field: str, bad: str) -> None:
    """What PostgreSQL cannot store is refused for SQLite too: one rule for both stores."""
    with pytest.raises(ValidationError) as err:
        Post.model_validate({"id": "p", "text": "x", field: bad})
    (e,) = err.value.errors()
    assert e["loc"] == (field,)
    assert e["type"] in ("forbidden_character", "string_unicode")  # pydantic: surrogates


@pytest.mark.parametrize("field", ["id", "source", "lang"])
@pytest.mark.parametrize("control", ["\t", "\n", "\r", "\x1b", "\x7f", "\x85"])
def test_keys_refuse_control_characters(field: str, control: str) -> None:
    with pytest.raises(ValidationError) as err:
        Post.model_validate({"id": "p", "text": "x", field: f"a{control}b"})
    assert err.value.errors()[0]["type"] == "forbidden_character"
    assert f"U+{ord(control):04X}" in str(err.value)


def test_text_and_title_keep_tabs_newlines_and_other_controls() -> None:
    post = Post.model_validate({"id": "p", "text": "a\tb\nc\r\x01\x7f", "title": "t\x1b",
                                "source": "wire · ☃", "lang": "zh-Hant",
                                "metadata": {"k": "\x00\ud800"}})
    assert post.text == "a\tb\nc\r\x01\x7f" and post.title == "t\x1b"


def test_forbidden_character_says_what_and_where() -> None:
    assert forbidden_character("ok \t", controls=False) is None
    assert forbidden_character("ok \t", controls=True) == "a control character (U+0009) at position 3"
    assert forbidden_character("é\ud800", controls=False) == "a lone surrogate (U+D800) at position 1"
    assert forbidden_character("😀\x00", controls=True) == "a NUL character (U+0000) at position 1"


def test_text_limit_is_inclusive() -> None:
    assert len(Post.model_validate({"id": "p", "text": "x" * 100_000}).text) == 100_000


def test_json_schemas_are_generated() -> None:
    post_schema = Post.model_json_schema()
    assert set(post_schema["required"]) == {"id", "text"}
    cls_schema = Classification.model_json_schema()
    for key in ("doc_id", "label", "score", "scores", "model", "needs_review", "entities",
                "timings_ms"):
        assert key in cls_schema["properties"]


def test_classification_rejects_score_out_of_range() -> None:
    ref = ModelRef(name="m", version="1", weights_sha256="0" * 64)
    with pytest.raises(ValidationError):
        Classification(doc_id="a", source="", label="x", score=1.5, scores={}, model=ref)
