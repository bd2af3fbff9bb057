from __future__ import annotations

import pytest

from docstream.preprocess.clean import clean_text, compose_text
from docstream.preprocess.config import PreprocessConfig

CFG = PreprocessConfig()


@pytest.mark.parametrize(
    "raw, social, expected",
    [
        ("<p>Hello&nbsp;<b>world</b></p>", False, "Hello world"),
        ("Oil rose to  #36;50 a barrel", False, "Oil rose to $50 a barrel"),
        ("<script>alert(1)</script>Real text", False, "Real text"),
        ("ﬁnance\u00a0news", False, "finance news"),  # NFKC: ligature and nbsp
        ("a\x00b\u200bc\n\n d", False, "a b c d"),
        ("Goal! #WorldCup2026 @fifa_fan https://www.bbc.co.uk/sport/x.", True,
         "Goal! World Cup 2026 @user bbc.co.uk."),
        ("see www.example.com/page", True, "see example.com"),
        ("email me at bob@example.com", True, "email me at bob@example.com"),
        ("#WorldCup stays in news", False, "#WorldCup stays in news"),
    ],
)
def test_clean_text(raw: str, social: bool, expected: str) -> None:
    assert clean_text(raw, CFG, social=social) == expected


def test_html_only_text_cleans_to_empty() -> None:
    assert clean_text("<p> </p>  <br/>", CFG) == ""


def test_url_modes() -> None:
    token = PreprocessConfig(urls="token")
    assert clean_text("read https://x.org/a", token, social=True) == "read URL"
    keep = PreprocessConfig(urls="keep", mentions="keep", hashtags="keep")
    assert clean_text("@a #B https://x.org", keep, social=True) == "@a #B https://x.org"


def test_compose_text_joins_title() -> None:
    assert compose_text("Body.", "Title", CFG) == "Title. Body."
    assert compose_text("Body.", "Title?", CFG) == "Title? Body."
    assert compose_text("Body.", None, CFG) == "Body."
    assert compose_text("Body.", "Title", PreprocessConfig(include_title=False)) == "Body."
