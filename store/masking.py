"""Passwords never reach a message: mask database URLs and DSN passwords in any text.

Every store message that names a database goes through `mask_url` (for the URL itself) or
`mask_secrets` (for driver messages, which may quote a connection string).

Example:
    >>> mask_url("postgresql+psycopg://app:s3cr3t@db:5432/posts")
    'postgresql+psycopg://app:***@db:5432/posts'
    >>> mask_secrets("bad url x://u:p@ss@h/db and password=hunter2")
    'bad url x://u:***@h/db and password=***'
"""

from __future__ import annotations

import re

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

MASK = "***"

# scheme://user:PASSWORD@host...: the password runs (greedily) to the last "@" of the token,
# so an unencoded "@" inside it is masked too; masking too much beats leaking.
_URL_PASSWORD = re.compile(
    r"(?P<head>\b[A-Za-z][A-Za-z0-9+.\-]*://[^:/@\s'\"]*:)(?P<pw>[^\s'\"]*)@"
)
# user:PASSWORD@host without a scheme (a URL that does not parse)
_BARE_PASSWORD = re.compile(r"(?P<head>[^\s:/@'\"]+:)(?P<pw>[^\s'\"]*)@")
# libpq key=value connection strings: password=... or password='...'
_DSN_PASSWORD = re.compile(r"(?P<head>\bpassword\s*=\s*)(?P<pw>'(?:[^'\\]|\\.)*'|[^\s'\"]+)",
                           re.IGNORECASE)


def mask_secrets(text: str) -> str:
    """`text` with the password of every URL or `password=` pair replaced by ***."""
    text = _URL_PASSWORD.sub(lambda m: f"{m['head']}{MASK}@", text)
    return _DSN_PASSWORD.sub(lambda m: f"{m['head']}{MASK}", text)


def mask_url(url: str | URL) -> str:
    """A database URL fit for a message: password masked, whether or not it parses."""
    if isinstance(url, URL):
        return mask_secrets(url.render_as_string(hide_password=True))
    try:
        rendered = make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError, TypeError):
        if "://" in url:
            return mask_secrets(url)
        return mask_secrets(_BARE_PASSWORD.sub(lambda m: f"{m['head']}{MASK}@", url))
    return mask_secrets(rendered)
