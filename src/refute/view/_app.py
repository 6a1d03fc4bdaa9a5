"""`refute view`'s web app: Starlette routes over the store, pages rendered by Jinja2 with
autoescaping (model output is untrusted: it is always escaped, never marked safe).

Access: the server binds loopback unless told otherwise, and off loopback it needs a token (given
once as ``?token=``, then kept in a cookie). Forms that write (a label, a drawn sample) carry a
per-server secret, so another site open in the same browser cannot post to the viewer.
"""

from __future__ import annotations

import hmac
import secrets
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates
from starlette.types import ASGIApp

from refute.errors import ConfigError, RefuteError, RunNotFoundError, StoreError
from refute.scorers import draw_label_sample, queue_label_sample
from refute.store import Store
from refute.view._export import FORMATS, export_bytes
from refute.view._pages import (
    Redaction,
    calibrate,
    compare_page,
    label_page,
    run_page,
    sample_filter,
    samples_context,
    studies_page,
    transcript_page,
)
from refute.view._queries import PAGE_SIZES, RunFilter, distinct, export_rows, list_runs, sample_page

__all__ = ["ViewConfig", "create_app"]

_HERE = Path(__file__).resolve().parent
TOKEN_COOKIE = "refute_view_token"


@dataclass(frozen=True)
class ViewConfig:
    """How the viewer serves one store."""

    store: Path
    unredacted: bool = False
    token: str | None = None  # required on every request when set
    labeller: str = "anonymous"
    secret: str = field(default_factory=lambda: secrets.token_urlsafe(24))  # form posts carry it


class _Stores(threading.local):
    """One store connection per worker thread (SQLite connections stay in their thread)."""

    store: Store | None = None


def _environment() -> Environment:
    env = Environment(loader=FileSystemLoader(_HERE / "templates"), autoescape=select_autoescape(default=True),
                      trim_blocks=True, lstrip_blocks=True)
    env.filters["rate"] = lambda v: "-" if v is None else f"{v:.3f}"
    env.filters["signed"] = lambda v: "-" if v is None else f"{v:+.3f}"
    return env


def create_app(config: ViewConfig) -> Starlette:
    """The viewer's app for ``config.store`` (opened per thread, read-only when it cannot be written)."""
    templates = Jinja2Templates(env=_environment())
    stores = _Stores()
    redaction = Redaction(config.unredacted)

    def store() -> Store:
        if stores.store is None:
            stores.store = Store(config.store)
        return stores.store

    def page(request: Request, name: str, context: dict[str, Any], status: int = 200) -> Response:
        base = {"secret": config.secret, "unredacted": config.unredacted, "store_path": str(config.store),
                "query": dict(request.query_params), "labeller": config.labeller}
        return templates.TemplateResponse(request, name, base | context, status_code=status)

    def handler(fn: Callable[[Request], Response]) -> Callable[[Request], Awaitable[Response]]:
        """Run ``fn`` in a worker thread; the store's errors become pages that say what to do."""
        async def endpoint(request: Request) -> Response:
            try:
                return await run_in_threadpool(fn, request)
            except (RunNotFoundError, LookupError) as exc:
                return page(request, "error.html", {"title": "Not found", "message": str(exc)}, 404)
            except ConfigError as exc:
                return page(request, "error.html", {"title": "Bad request", "message": str(exc)}, 400)
            except (StoreError, RefuteError) as exc:
                return page(request, "error.html", {"title": "Store error", "message": str(exc)}, 500)
        return endpoint

    def posted(fn: Callable[[Request, FormData], Response]) -> Callable[[Request], Awaitable[Response]]:
        """A form's endpoint: the form is read, its secret checked, then ``fn`` runs as `handler` runs pages."""
        async def endpoint(request: Request) -> Response:
            form = await request.form()

            def checked(_: Request) -> Response:
                if not hmac.compare_digest(str(form.get("secret", "")), config.secret):
                    raise ConfigError("this form is stale or came from another page (reload the page and try again)")
                return fn(request, form)
            return await handler(checked)(request)
        return endpoint

    # --- pages ---------------------------------------------------------------------------------

    def runs(request: Request) -> Response:
        q = request.query_params
        f = RunFilter(model=q.get("model", ""), dataset=q.get("dataset", ""), kind=q.get("kind", ""),
                      status=q.get("status", ""), study=q.get("study", ""), q=q.get("q", "").strip(),
                      sort=q.get("sort", "-created_at"))
        db = store()
        choices = {c: distinct(db, c) for c in ("model_spec", "dataset_name", "kind", "status")}
        return page(request, "runs.html", {"runs": list_runs(db, f), "filter": f, "choices": choices})

    def run(request: Request) -> Response:
        context = run_page(store(), request.path_params["run_id"], request.query_params.get("scorer"), redaction)
        return page(request, "run.html", context)

    def samples(request: Request) -> Response:
        db = store()
        context = samples_context(db, request.path_params["run_id"], request.query_params.get("scorer"))
        r = context["run"]
        f = sample_filter(request.query_params, context["scorer"])
        limit = request.query_params.get("limit", "50") or "50"
        size = int(limit) if limit.isdigit() else 0
        if size not in PAGE_SIZES:
            raise ConfigError(f"limit: choose one of {', '.join(map(str, PAGE_SIZES))}")
        try:
            after = int(request.query_params.get("after", "0") or 0)
        except ValueError:
            raise ConfigError("after: not a sample id") from None
        result = sample_page(db, r.id, f, after=after, limit=size)
        params = {k: v for k, v in request.query_params.items() if k != "after" and v != ""}
        return page(request, "samples.html", context | {
            "page": result, "filter": f, "hidden": redaction.hides(r), "params": params,
            "next_url": (f"?{urlencode(params | {'after': result.next_after})}" if result.next_after else None),
            "first_url": f"?{urlencode(params)}", "export_query": urlencode(params), "sizes": PAGE_SIZES})

    def export(request: Request) -> Response:
        db = store()
        run_rec = db.get_run(request.path_params["run_id"])
        fmt = request.path_params["fmt"]
        if fmt not in FORMATS:
            raise ConfigError(f"export format {fmt!r}: choose from {', '.join(FORMATS)}")
        scorer = samples_context(db, run_rec.id, request.query_params.get("scorer"))["scorer"]
        rows = export_rows(db, run_rec.id, sample_filter(request.query_params, scorer))
        name = f"run-{run_rec.id}-samples.{fmt}"
        return Response(export_bytes(rows, fmt), media_type=FORMATS[fmt],
                        headers={"Content-Disposition": f'attachment; filename="{name}"'})

    def transcript(request: Request) -> Response:
        try:
            sample_id = int(request.path_params["sample_id"])
        except ValueError:
            raise LookupError(f"not a sample id: {request.path_params['sample_id']!r}") from None
        reveal = request.query_params.get("reveal") == "1"
        return page(request, "transcript.html", transcript_page(store(), sample_id, redaction, reveal))

    def compare(request: Request) -> Response:
        q = request.query_params
        a, b = q.get("a", ""), q.get("b", "")
        if not a or not b:
            raise ConfigError("compare needs two runs: /compare?a=RUN&b=RUN (tick two runs on the runs page)")
        return page(request, "compare.html", compare_page(store(), a, b, q.get("scorer")))

    def studies(request: Request) -> Response:
        return page(request, "studies.html", studies_page(store()))

    def report_file(request: Request) -> Response:
        folder = (config.store.parent / "reports").resolve()
        path = (folder / request.path_params["name"]).resolve()
        if path.parent != folder or path.suffix.lower() != ".html" or not path.is_file():
            raise LookupError(f"no report {request.path_params['name']!r} in {folder}")
        return FileResponse(path, media_type="text/html")

    def label(request: Request) -> Response:
        context = label_page(store(), request.path_params["run_id"], request.query_params.get("scorer"))
        return page(request, "label.html", context)

    def save_label(request: Request, form: FormData) -> Response:
        db, run_id = store(), request.path_params["run_id"]
        scorer = str(form.get("scorer", ""))
        action = str(form.get("action", "label"))
        if action == "undo":
            last = [q for q in db.label_queue(run_id, scorer) if q.label is not None]
            if last:
                latest = max(last, key=lambda q: q.labelled_at or "")
                db.delete_label(run_id, latest.sample_id, scorer)
        else:
            try:
                sample_id = int(str(form.get("sample_id", "")))
            except ValueError:
                raise ConfigError("sample_id: not a sample id") from None
            db.save_label(run_id, sample_id, scorer, str(form.get("label", "")),
                          str(form.get("labeller") or config.labeller))
        return RedirectResponse(f"/runs/{run_id}/label?{urlencode({'scorer': scorer})}", status_code=303)

    def draw_queue(request: Request, form: FormData) -> Response:
        db, run_id = store(), request.path_params["run_id"]
        try:
            n, seed = int(str(form.get("n", "100"))), int(str(form.get("seed", "0")))
        except ValueError:
            raise ConfigError("n and seed: whole numbers") from None
        scorer = str(form.get("scorer", "")) or None
        sheet = draw_label_sample(db, run_id, n, seed=seed, scorer=scorer)
        queue_label_sample(db, sheet)
        return RedirectResponse(f"/runs/{sheet.run_id}/label?{urlencode({'scorer': sheet.scorer})}",
                                status_code=303)

    def store_calibration(request: Request, form: FormData) -> Response:
        context = calibrate(store(), request.path_params["run_id"], str(form.get("scorer", "")))
        return page(request, "calibrated.html", context)

    async def home(_: Request) -> Response:
        return RedirectResponse("/runs", status_code=302)

    routes = [
        Route("/", home),
        Route("/runs", handler(runs)),
        Route("/runs/{run_id}", handler(run)),
        Route("/runs/{run_id}/samples", handler(samples)),
        Route("/runs/{run_id}/export.{fmt}", handler(export)),
        Route("/runs/{run_id}/label", handler(label)),
        Route("/runs/{run_id}/label", posted(save_label), methods=["POST"]),
        Route("/runs/{run_id}/queue", posted(draw_queue), methods=["POST"]),
        Route("/runs/{run_id}/calibrate", posted(store_calibration), methods=["POST"]),
        Route("/samples/{sample_id}", handler(transcript)),
        Route("/compare", handler(compare)),
        Route("/studies", handler(studies)),
        Route("/reports/{name}", handler(report_file)),
        Mount("/static", StaticFiles(directory=_HERE / "static"), name="static"),
    ]
    middleware = [Middleware(_TokenCheck, token=config.token)] if config.token else []
    return Starlette(routes=routes, middleware=middleware)


class _TokenCheck(BaseHTTPMiddleware):
    """Every request needs the token: as ``?token=`` (kept in a cookie from then on), the cookie,
    or an ``Authorization: Bearer`` header."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        super().__init__(app)
        self.token = token

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        given = (request.query_params.get("token") or request.cookies.get(TOKEN_COOKIE)
                 or request.headers.get("authorization", "").removeprefix("Bearer ").strip())
        if not given or not hmac.compare_digest(given, self.token):
            return HTMLResponse("<h1>401: token needed</h1><p>Open the URL with <code>?token=...</code> that "
                                "<code>refute view</code> printed.</p>", status_code=401)
        response = await call_next(request)
        if request.query_params.get("token"):
            response.set_cookie(TOKEN_COOKIE, self.token, httponly=True, samesite="strict")
        return response
