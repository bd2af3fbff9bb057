"""The settings of one `docstream serve`, validated before the server starts."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class ServeSettings(BaseModel):
    """`read_url` is used read-only (best the reader role's); `review_url` writes reviews
    (best the reviewer role's, which may only insert them) and checks reviewer tokens."""

    model_config = ConfigDict(frozen=True)

    read_url: str
    review_url: str
    secret: bytes = Field(min_length=32, repr=False,
                          description="signs session cookies and CSRF tokens")
    secure_cookies: bool = Field(default=False, description="mark cookies Secure (behind TLS)")
    session_minutes: int = Field(default=8 * 60, ge=1, le=7 * 24 * 60)
    page_size: int = Field(default=50, ge=1, le=500)
