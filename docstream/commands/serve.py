"""`docstream serve`: the results API (JSON, OpenAPI at /openapi.json) and the review pages.

Reads go through a read-only connection (--db: best the reader role's URL); reviews are
written through --review-db (best the reviewer role's, which may only insert reviews and
check reviewer tokens). On SQLite both are the same file.
"""

from __future__ import annotations

import argparse
import logging
import os
import secrets
from pathlib import Path

from docstream.errors import ConfigError

log = logging.getLogger(__name__)
SECRET_ENV = "DOCSTREAM_SERVE_SECRET"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="serve the results API and the review pages",
                       description="Serve the JSON API (/api/..., OpenAPI at /openapi.json) "
                       "and the pages (overview, review queue, documents) over the store.")
    p.add_argument("--db", metavar="URL", help="store to read, best the reader role's URL; "
                   "default $DOCSTREAM_READER_DB, else $DOCSTREAM_DB, else sqlite:///docstream.db")
    p.add_argument("--review-db", metavar="URL", help="where reviews are written and tokens "
                   "checked, best the reviewer role's URL (`docstream db roles`); default "
                   "$DOCSTREAM_REVIEWER_DB, else $DOCSTREAM_DB, else the --db URL")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default "
                   "127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--secret-file", metavar="FILE", help="file holding the secret that signs "
                   f"sessions (>= 32 bytes); default ${SECRET_ENV}, else a random one (sessions "
                   "then end when the server stops)")
    p.add_argument("--secure-cookies", action="store_true", help="mark cookies Secure: set "
                   "it when the pages are served over HTTPS (a TLS proxy in front)")
    p.add_argument("--session-minutes", type=int, default=480, help="sign-in lifetime")
    p.set_defaults(func=run)


def _secret(path: str | None) -> bytes:
    if path:
        try:
            secret = Path(path).read_bytes().strip()
        except OSError as e:
            raise ConfigError(f"cannot read --secret-file {path}: {e.strerror}") from e
    else:
        secret = os.environ.get(SECRET_ENV, "").encode()
        if not secret:
            log.info("no --secret-file or $%s: a random session secret; sign-ins end when "
                     "the server stops", SECRET_ENV)
            return secrets.token_bytes(32)
    if len(secret) < 32:
        raise ConfigError("the session secret must be at least 32 bytes (e.g. `openssl rand "
                          "-hex 32 > secret`)")
    return secret


def urls(db: str | None, review_db: str | None) -> tuple[str, str]:
    """(read URL, review URL) from the flags and the environment."""
    from docstream.store.engine import default_url

    read = db or os.environ.get("DOCSTREAM_READER_DB") or default_url()
    review = review_db or os.environ.get("DOCSTREAM_REVIEWER_DB") or db \
        or os.environ.get("DOCSTREAM_DB") or read
    return read, review


def run(args: argparse.Namespace) -> int:
    if not 0 < args.port < 65536:
        raise ConfigError("--port must be 1..65535")
    import uvicorn

    from docstream.store.errors import StoreError
    from docstream.store.masking import mask_url
    from docstream.store.migrate import current_revision, head_revision
    from docstream.web.app import create_app
    from docstream.web.context import ServeContext
    from docstream.web.settings import ServeSettings

    read, review = urls(args.db, args.review_db)
    settings = ServeSettings(read_url=read, review_url=review, secret=_secret(args.secret_file),
                             secure_cookies=args.secure_cookies,
                             session_minutes=args.session_minutes)
    ctx = ServeContext.open(settings)
    with ctx.reader.connect() as conn:
        revision = current_revision(conn)
    if revision != head_revision():
        ctx.close()
        raise StoreError(f"the store at {mask_url(read)} is at revision {revision or 'none'}; "
                         f"this docstream needs {head_revision()}: run `docstream db upgrade` "
                         "(or any `docstream run`) first")
    if review == read and ctx.reviewer.dialect.name == "postgresql":
        log.warning("reviews are written with the read URL's login: pass the reviewer role's "
                    "URL with --review-db for least privilege (`docstream db roles`)")
    print(f"docstream serve: http://{args.host}:{args.port}/  (store {mask_url(read)}; "
          "API at /api, OpenAPI at /openapi.json)", flush=True)
    uvicorn.run(create_app(ctx), host=args.host, port=args.port,
                log_level="info" if args.verbose else "warning")
    return 0
