"""The pages: overview, review queue, results, one document, dead letters, sign-in; and the
page form that records a decision (session cookie + CSRF token).

Rendered on the server with Jinja2 (autoescaping on), styled and scripted only from /static.
"""

from __future__ import annotations

from datetime import datetime
from importlib import resources
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Query, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from docstream.schemas.review import ReviewDecision
from docstream.store import browse, reviews, stats
from docstream.store.reviews import ReviewRefused

from .api import Filter
from .context import ServeContext, context
from .security import (
    CSRF_COOKIE,
    SESSION_COOKIE,
    Session,
    csrf_ok,
    csrf_token,
    make_session,
    new_nonce,
    read_session,
)

router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(directory=str(resources.files("docstream.web") / "templates"))
Ctx = Annotated[ServeContext, Depends(context)]


def _session(ctx: ServeContext, request: Request) -> Session | None:
    session = read_session(ctx.settings.secret, request.cookies.get(SESSION_COOKIE))
    if session is not None and not reviews.is_active(ctx.reviewer, session.reviewer):
        return None  # revoked since sign-in
    return session


def render(ctx: ServeContext, request: Request, name: str, *, status_code: int = 200,
           nonce: str | None = None, **values: Any) -> HTMLResponse:
    """A page with the visitor's session and a CSRF token for its forms (the `ds_csrf`
    nonce cookie is set on first visit, or replaced when `nonce` is given)."""
    given = nonce or request.cookies.get(CSRF_COOKIE)
    fresh = given is None or nonce is not None
    nonce = given or new_nonce()
    session = _session(ctx, request)
    response = templates.TemplateResponse(request, name, {
        "reviewer": session.reviewer if session else None,
        "csrf": csrf_token(ctx.settings.secret, nonce), **values,
    }, status_code=status_code)
    if fresh:
        response.set_cookie(CSRF_COOKIE, nonce, httponly=True, samesite="strict",
                            secure=ctx.settings.secure_cookies)
    return response


def _query(request: Request, **change: Any) -> str:
    params = {k: v for k, v in request.query_params.items() if k not in change}
    params.update({k: v for k, v in change.items() if v is not None})
    return "?" + urlencode(params)


@router.get("/", response_class=HTMLResponse)
def overview_page(ctx: Ctx, request: Request, bucket: Literal["hour", "day"] = "hour",
                  since: datetime | None = None, until: datetime | None = None) -> Response:
    data = stats.overview(ctx.reader, bucket=bucket, since=since, until=until)
    chart = {"bucket": bucket, "labels": data["labels"], "per_bucket": data["per_bucket"],
             "runs": [{"run_id": r["run_id"], "docs_per_s": r["docs_per_s"]}
                      for r in reversed(data["runs"])],
             "dead_letters": data["dead_letters"],
             "review": {"flagged": data["needs_review"], "reviewed": data["reviewed_flagged"],
                        "results": data["results"]}}
    return render(ctx, request, "overview.html", stats=data, chart=chart, bucket=bucket)


def _list_page(ctx: ServeContext, request: Request, f: browse.ResultFilter, *, queue: bool,
               cursor: str | None) -> Response:
    order: browse.Order = "score" if queue else "newest"
    if queue:
        f = f.model_copy(update={"needs_review": True, "reviewed": False})
    page = browse.list_results(ctx.reader, f, order=order, limit=ctx.settings.page_size,
                               cursor=cursor)
    return render(ctx, request, "results.html", page=page, queue=queue, filters=f,
                  next_href=_query(request, cursor=page.next_cursor) if page.next_cursor
                  else None)


@router.get("/queue", response_class=HTMLResponse)
def queue_page(ctx: Ctx, request: Request, f: Filter, cursor: str | None = None) -> Response:
    return _list_page(ctx, request, f, queue=True, cursor=cursor)


@router.get("/results", response_class=HTMLResponse)
def results_page(ctx: Ctx, request: Request, f: Filter, cursor: str | None = None) -> Response:
    return _list_page(ctx, request, f, queue=False, cursor=cursor)


@router.get("/queue/next")
def queue_next(ctx: Ctx, after: str | None = None) -> Response:
    """The document after `after` (a queue cursor) in the queue, or the queue when done."""
    f = browse.ResultFilter(needs_review=True, reviewed=False)
    page = browse.list_results(ctx.reader, f, order="score", limit=1, cursor=after or None)
    if not page.items:
        return RedirectResponse("/queue", status.HTTP_303_SEE_OTHER)
    item = page.items[0]
    return RedirectResponse("/documents?" + urlencode({"source": item["source"],
                                                       "id": item["id"]}),
                            status.HTTP_303_SEE_OTHER)


def _document(ctx: ServeContext, request: Request, source: str, doc_id: str, *,
              error: str | None = None, status_code: int = 200) -> Response:
    item = browse.get_result(ctx.reader, source, doc_id)
    if item is None:
        return render(ctx, request, "message.html", status_code=404, title="Not found",
                      message=f"There is no result {doc_id!r} from source {source!r}.")
    after = browse.encode_cursor("score", [item["score"], source, doc_id])
    return render(ctx, request, "document.html", item=item, error=error, after=after,
                  top=list(item["scores"].items())[:3], status_code=status_code)


@router.get("/documents", response_class=HTMLResponse)
def document_page(ctx: Ctx, request: Request, id: str, source: str = "") -> Response:
    return _document(ctx, request, source, id)


@router.post("/documents/review", response_class=HTMLResponse)
def review_form(
    ctx: Ctx, request: Request,
    source: Annotated[str, Form()], doc_id: Annotated[str, Form()],
    action: Annotated[Literal["accept", "relabel", "skip"], Form()],
    csrf_token: Annotated[str, Form()] = "",
    label: Annotated[str | None, Form()] = None,
    seen_version: Annotated[str | None, Form()] = None,
    seen_label: Annotated[str | None, Form()] = None,
    after: Annotated[str | None, Form()] = None,
) -> Response:
    """Accept, relabel or skip from the document page. Needs a signed-in reviewer and the
    page's CSRF token; skip records nothing and moves on."""
    if not csrf_ok(ctx.settings.secret, request.cookies.get(CSRF_COOKIE), csrf_token):
        return render(ctx, request, "message.html", status_code=403, title="Refused",
                      message="This form is stale or did not come from this site (CSRF "
                              "check failed). Reload the page and try again.")
    session = _session(ctx, request)
    if session is None:
        return render(ctx, request, "message.html", status_code=401, title="Sign in first",
                      message="Reviews need a signed-in reviewer.")
    next_url = "/queue/next?" + urlencode({"after": after or ""})
    if action == "skip":
        return RedirectResponse(next_url, status.HTTP_303_SEE_OTHER)
    decision = ReviewDecision(source=source, doc_id=doc_id, action=action,
                              label=label if action == "relabel" else None,
                              seen_version=seen_version or None, seen_label=seen_label or None)
    target = reviews.result_for_review(ctx.reader, source, doc_id)
    try:
        reviews.insert_review(ctx.reviewer, target, decision, session.reviewer)
    except ReviewRefused as e:
        return _document(ctx, request, source, doc_id, error=str(e), status_code=409)
    return RedirectResponse(next_url, status.HTTP_303_SEE_OTHER)


@router.get("/dead-letters", response_class=HTMLResponse)
def dead_letters_page(ctx: Ctx, request: Request, reason: str | None = None,
                      cursor: str | None = None) -> Response:
    page = browse.list_dead_letters(ctx.reader, reason=reason or None,
                                    limit=ctx.settings.page_size, cursor=cursor)
    return render(ctx, request, "dead_letters.html", page=page, reason=reason,
                  next_href=_query(request, cursor=page.next_cursor) if page.next_cursor
                  else None)


@router.get("/login", response_class=HTMLResponse)
def login_page(ctx: Ctx, request: Request,
               next: Annotated[str, Query(alias="next")] = "/queue") -> Response:
    return render(ctx, request, "login.html", next=_local(next), error=None)


def _local(target: str) -> str:
    """Only same-site paths as redirect targets (no open redirect)."""
    return target if target.startswith("/") and not target.startswith("//") \
        and "\\" not in target else "/queue"


@router.post("/login", response_class=HTMLResponse)
def login(ctx: Ctx, request: Request, token: Annotated[str, Form()],
          csrf_token: Annotated[str, Form()] = "", next: Annotated[str, Form()] = "/queue"
          ) -> Response:
    if not csrf_ok(ctx.settings.secret, request.cookies.get(CSRF_COOKIE), csrf_token):
        return render(ctx, request, "message.html", status_code=403, title="Refused",
                      message="This form is stale (CSRF check failed). Reload and try again.")
    name = reviews.authenticate(ctx.reviewer, token.strip())
    if name is None:
        return render(ctx, request, "login.html", status_code=401, next=_local(next),
                      error="That token is not a reviewer's (or it was revoked).")
    response = RedirectResponse(_local(next), status.HTTP_303_SEE_OTHER)
    response.set_cookie(SESSION_COOKIE, make_session(ctx.settings.secret, name,
                                                     ctx.settings.session_minutes),
                        max_age=ctx.settings.session_minutes * 60, httponly=True,
                        samesite="strict", secure=ctx.settings.secure_cookies)
    # a new CSRF nonce for the new session (a nonce planted before sign-in is worthless)
    response.set_cookie(CSRF_COOKIE, new_nonce(), httponly=True, samesite="strict",
                        secure=ctx.settings.secure_cookies)
    return response


@router.post("/logout")
def logout(ctx: Ctx, request: Request, csrf_token: Annotated[str, Form()] = "") -> Response:
    if not csrf_ok(ctx.settings.secret, request.cookies.get(CSRF_COOKIE), csrf_token):
        return render(ctx, request, "message.html", status_code=403, title="Refused",
                      message="This form is stale (CSRF check failed). Reload and try again.")
    response = RedirectResponse("/", status.HTTP_303_SEE_OTHER)
    response.delete_cookie(SESSION_COOKIE)
    return response
