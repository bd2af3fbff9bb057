"""Text normalisation: unicode, HTML, whitespace, and social-media conventions."""

from __future__ import annotations

import html
import re
import unicodedata
from urllib.parse import urlsplit

from .config import PreprocessConfig

_TAG = re.compile(r"<(script|style)\b[^>]*>.*?</\1\s*>|<!--.*?-->|</?[A-Za-z][^>]{0,2000}>", re.S | re.I)
_BROKEN_ENTITY = re.compile(r"(?<![&\w])#(\d{2,5});")  # ' #36;' left by feeds that dropped '&'


def _entity(m: re.Match[str]) -> str:
    """The character a broken numeric entity names; a space for one that names none (a
    surrogate, beyond U+10FFFF), which the tokenizer could not encode."""
    n = int(m.group(1))
    return chr(n) if n < 0x110000 and not 0xD800 <= n <= 0xDFFF else " "


_URL = re.compile(r"\b(?:https?://|www\.)[^\s<>\"']+", re.I)
_MENTION = re.compile(r"(?<![\w@])@\w{1,50}")
_HASHTAG = re.compile(r"(?<![\w#&])#(\w{1,100})")
_CAMEL = re.compile(r"(?<=[a-z])(?=[A-Z])|(?<=[A-Za-z])(?=\d)|(?<=\d)(?=[A-Za-z])")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u200b-\u200f\u2028\u2029\ufeff]")
_SPACES = re.compile(r"\s+")


def _url_domain(match: re.Match[str]) -> str:
    url = match.group(0).rstrip(".,;:!?)]}")
    tail = match.group(0)[len(url) :]
    host = urlsplit(url if "://" in url else "http://" + url).hostname or "URL"
    return (host.removeprefix("www.") or "URL") + tail


def _split_hashtag(match: re.Match[str]) -> str:
    return _CAMEL.sub(" ", match.group(1).replace("_", " "))


def clean_text(text: str, config: PreprocessConfig, *, social: bool = False) -> str:
    """Normalise one text the way every model saw its training data.

    Example:
        >>> clean_text("<p>Big&nbsp;win for  @bob #WorldCup https://www.bbc.co.uk/x</p>",
        ...            PreprocessConfig(), social=True)
        'Big win for @user World Cup bbc.co.uk'
    """
    out = unicodedata.normalize(config.unicode_form, text)
    if config.strip_html:
        out = _TAG.sub(" ", out)
        out = html.unescape(out)
        out = _BROKEN_ENTITY.sub(_entity, out)
        out = unicodedata.normalize(config.unicode_form, out)
    out = _CONTROL.sub(" ", out)
    if social:
        if config.urls == "domain":
            out = _URL.sub(_url_domain, out)
        elif config.urls == "token":
            out = _URL.sub("URL", out)
        if config.mentions == "token":
            out = _MENTION.sub("@user", out)
        if config.hashtags == "split":
            out = _HASHTAG.sub(_split_hashtag, out)
        elif config.hashtags == "strip":
            out = _HASHTAG.sub(lambda m: m.group(1), out)
    return _SPACES.sub(" ", out).strip()


def compose_text(text: str, title: str | None, config: PreprocessConfig) -> str:
    """The text the model reads: the title (if any, and enabled) then the body."""
    if not (config.include_title and title and title.strip()):
        return text
    title = title.strip()
    joiner = " " if title[-1] in ".!?:" else ". "
    return f"{title}{joiner}{text}"
