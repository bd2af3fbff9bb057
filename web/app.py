"""The FastAPI application of `docstream serve`: API, pages, static files, and the error and
header policy they share."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from importlib import resources

from fastapi import FastAPI, Request, status
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy.exc import SQLAlchemyError

from docstream.store.browse import BadCursor
from docstream.store.errors import StoreError
from docstream.store.reviews import ReviewRefused
from docstream.store.transient import driver_message, is_transient

from . import api, metrics, pages
from .context import ServeContext
from .security import SECURITY_HEADERS

log = logging.getLogger(__name__)


def create_app(ctx: ServeContext) -> FastAPI:
    """The app over an open context (ServeContext.open); it closes the context on shutdown.
    No /docs or /redoc: their pages load scripts from a CDN; /openapi.json is served."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        ctx.close()

    app = FastAPI(title="docstream", summary="Results, review queue and reviews",
                  docs_url=None, redoc_url=None, lifespan=lifespan)
    app.state.ctx = ctx
    app.include_router(api.router)
    app.include_router(pages.router)
    app.include_router(metrics.router)  # GET /metrics: store gauges for Prometheus
    app.mount("/static", StaticFiles(directory=str(resources.files("docstream.web") / "static")),
              name="static")

    @app.middleware("http")
    async def headers(request: Request,
                      call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        response = await call_next(request)
        for name, value in SECURITY_HEADERS.items():
            if name == "Cache-Control" and request.url.path.startswith("/static/"):
                continue
            response.headers.setdefault(name, value)
        return response

    def _error(request: Request, code: int, message: str) -> Response:
        if request.url.path.startswith("/api/"):
            return JSONResponse({"detail": message}, status_code=code)
        return pages.render(ctx, request, "message.html", status_code=code,
                            title="Cannot show this", message=message)

    @app.exception_handler(BadCursor)
    async def bad_cursor(request: Request, e: BadCursor) -> Response:
        return _error(request, status.HTTP_400_BAD_REQUEST, str(e))

    @app.exception_handler(ReviewRefused)
    async def refused(request: Request, e: ReviewRefused) -> Response:
        return _error(request, status.HTTP_409_CONFLICT, str(e))

    @app.exception_handler(StoreError)
    async def store_error(request: Request, e: StoreError) -> Response:
        return _error(request, status.HTTP_400_BAD_REQUEST, str(e))

    @app.exception_handler(SQLAlchemyError)
    async def database(request: Request, e: SQLAlchemyError) -> Response:
        if is_transient(e):
            log.warning("the store is unavailable: %s", driver_message(e))
            return _error(request, status.HTTP_503_SERVICE_UNAVAILABLE,
                          "the store is unavailable; try again shortly")
        log.error("database error on %s: %s", request.url.path, driver_message(e))
        return _error(request, status.HTTP_500_INTERNAL_SERVER_ERROR,
                      f"the store refused this request: {driver_message(e)}")

    return app
