"""Sessions, CSRF tokens and the security headers of every response.

- A reviewer signs in once with their token (`docstream reviewers add`); the server answers
  with a session cookie: `name|expiry|nonce` signed with HMAC-SHA256 under the server's
  secret (HttpOnly, SameSite=Strict; Secure with --secure-cookies).
- Every form carries a CSRF token: HMAC of the visitor's `ds_csrf` cookie nonce. A POST whose
  token does not match (or that has no cookie) is refused; the nonce is renewed at sign-in.
- Every comparison of a secret value (signatures, CSRF tokens, reviewer token hashes in
  store.reviews.authenticate) uses hmac.compare_digest.
- The Content-Security-Policy allows scripts, styles, images and fetches from the server
  itself only (no inline script or style): a post's text that carries markup renders inert
  twice over (Jinja2 escapes it, and the browser would refuse to run it anyway), and no page
  can make a request to another host.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

SESSION_COOKIE = "ds_session"
CSRF_COOKIE = "ds_csrf"
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
       "form-action 'self'; frame-ancestors 'none'")
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
    "Cache-Control": "no-store",
}


def _sign(secret: bytes, purpose: str, value: str) -> str:
    mac = hmac.new(secret, f"{purpose}\x00{value}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).decode("ascii").rstrip("=")


def new_nonce() -> str:
    return secrets.token_urlsafe(18)


@dataclass(frozen=True)
class Session:
    reviewer: str
    expires: int


def make_session(secret: bytes, reviewer: str, minutes: int) -> str:
    value = f"{reviewer}|{int(time.time()) + minutes * 60}|{new_nonce()}"
    encoded = base64.urlsafe_b64encode(value.encode()).decode("ascii").rstrip("=")
    return f"{encoded}.{_sign(secret, 'session', encoded)}"


def read_session(secret: bytes, cookie: str | None) -> Session | None:
    """The session of a cookie this server signed and that has not expired, else None."""
    if not cookie or "." not in cookie or len(cookie) > 512:
        return None
    encoded, signature = cookie.rsplit(".", 1)
    if not hmac.compare_digest(signature.encode(), _sign(secret, "session", encoded).encode()):
        return None
    try:
        value = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
        reviewer, expires, _nonce = value.split("|")
        session = Session(reviewer=reviewer, expires=int(expires))
    except ValueError:
        return None
    return session if session.expires > time.time() else None


def csrf_token(secret: bytes, nonce: str) -> str:
    return _sign(secret, "csrf", nonce)


def csrf_ok(secret: bytes, nonce: str | None, token: str | None) -> bool:
    if not nonce or not token or len(token) > 128:
        return False
    return hmac.compare_digest(token.encode(), csrf_token(secret, nonce).encode())
