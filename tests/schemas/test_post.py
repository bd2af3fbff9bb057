from __future__ import annotations

import pytest
from pydantic import ValidationError

from docstream.schemas import Classification, ModelRef, Post


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
