"""The FastAPI app: thin handlers over the Python API, typed JSON, OpenAPI at /docs."""
from __future__ import annotations

import asyncio
import math
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match, Mount

from ..catalog import Catalog
from ..errors import NotFound, RnnvisError
from ..workspace import Workspace
from .limits import DEADLINE_S, READ_TIMEOUT_S, RequestLimits
from .security import GuardMiddleware, allowed_hosts

if TYPE_CHECKING:
    from ..explore.session import Explorer

WEB_DIR = Path(__file__).resolve().parent.parent / "web"


class DatasetOut(BaseModel):
    name: str
    title: str
    level: str
    task: str
    client: str
    package: str
    licence: str
    fetched: bool
    size_bytes: int | None = None
    documents: int | None = None


class ModelOut(BaseModel):
    id: str
    name: str
    kind: str
    tag: str | None
    epoch: int | None
    run_id: int | None
    config: dict[str, Any]
    metrics: dict[str, Any]


class RunOut(BaseModel):
    id: int
    name: str
    status: str
    source: str
    started_at: float
    ended_at: float | None
    config: dict[str, Any]


class SeriesPoint(BaseModel):
    step: int
    epoch: float | None
    value: float


class RunMetricsOut(BaseModel):
    run_id: int
    series: dict[str, dict[str, list[SeriesPoint]]]  # split -> key -> points


def _renderable(obj: Any) -> Any:
    """`obj` with what JSON cannot carry made plain: NaN and infinities as strings, lone surrogates
    (from a JSON body such as {"text": "\\ud800"}) as backslash escapes."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else str(obj)
    if isinstance(obj, str):
        return obj.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(obj, dict):
        return {_renderable(k): _renderable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_renderable(v) for v in obj]
    return obj


class ErrorResponse(JSONResponse):
    """The JSON {error, fix, ...} of an error: always renderable, whatever the request echoed."""

    def render(self, content: Any) -> bytes:
        return super().render(_renderable(content))


HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def route_methods(app: FastAPI, scope: dict) -> set[str]:
    """The HTTP methods that some route (not the web app's static files) fully matches on the request's path."""
    routes = [r for r in app.router.routes if not isinstance(r, Mount)]
    return {m for m in HTTP_METHODS
            if any(r.matches({**scope, "method": m})[0] == Match.FULL for r in routes)}


def _framework_message(exc: StarletteHTTPException) -> tuple[str, str]:
    cause = exc.__cause__
    if isinstance(cause, UnicodeDecodeError):
        return (f"the request body is not UTF-8 (undecodable byte at offset {cause.start})",
                "send the JSON body encoded as UTF-8")
    if isinstance(cause, RecursionError):
        return "the JSON body is nested too deeply", "send a flat JSON object (see /docs for each endpoint's body)"
    if exc.status_code == 400:
        return f"the request could not be read: {exc.detail}", "send a JSON body encoded as UTF-8 (see /docs)"
    return str(exc.detail), "see /docs for the API"


def _warm_imports() -> None:
    """Import the analysis stack (torch, scikit-learn) so that the first view does not pay for it.

    Runs at startup, before the server accepts requests (in a worker thread, off the event loop)."""
    try:
        import sklearn.cluster  # noqa: F401 - co-clustering
        import rnnvis.analysis  # noqa: F401
        import rnnvis.models  # noqa: F401
        import rnnvis.recording  # noqa: F401
    except Exception:  # noqa: BLE001 - only a speed-up; a real import error shows at first use
        pass


def create_app(ws: Workspace, host: str = "127.0.0.1", token: str | None = None,
               explorer: "Explorer | None" = None, read_timeout: float = READ_TIMEOUT_S,
               deadline: float | None = DEADLINE_S) -> FastAPI:
    """The app; a request body must arrive within `read_timeout` s and an /api answer start within
    `deadline` s (None: no deadline), see `limits.RequestLimits`."""
    from ..explore.jobs import QueueFull
    from ..explore.session import Explorer, NotReady
    from .routes_explore import TooLarge, explore_router

    own_explorer = explorer is None

    @asynccontextmanager
    async def lifespan(_: FastAPI):
        # Load the analysis stack (torch, scikit-learn) in a worker thread and wait for it: startup
        # takes longer, and requests are accepted only afterwards, so the first view does not pay.
        await asyncio.to_thread(_warm_imports)
        yield
        if own_explorer:
            app.state.explorer.jobs.shutdown()

    app = FastAPI(title="rnnvis", version="0.1.0", lifespan=lifespan,
                  description="Visual analysis of recurrent neural networks: JSON API of the web app.")
    app.state.ws = ws
    app.state.catalog = Catalog(ws.catalog_path)
    app.state.explorer = explorer if explorer is not None else Explorer(ws, app.state.catalog)
    # the last added middleware runs first: the host, origin and token checks come before the body-size
    # limit, so a client without the token gets 401, not 413, whatever it sends
    app.add_middleware(RequestLimits, read_timeout=read_timeout, deadline=deadline)
    app.add_middleware(GuardMiddleware, hosts=None if host in ("0.0.0.0", "::") else allowed_hosts(host),
                       token=token)

    @app.exception_handler(RnnvisError)
    async def _rnnvis_error(_: Request, exc: RnnvisError) -> JSONResponse:
        if isinstance(exc, NotReady):
            return ErrorResponse({"error": exc.what, "fix": exc.fix, "job": exc.job.to_json()}, status_code=409)
        if isinstance(exc, QueueFull):  # nothing was queued: come back later
            return ErrorResponse({"error": exc.what, "fix": exc.fix}, status_code=503,
                                 headers={"Retry-After": str(exc.retry_after_s)})
        status = 404 if isinstance(exc, NotFound) else 413 if isinstance(exc, TooLarge) else 400
        return ErrorResponse({"error": exc.what, "fix": exc.fix}, status_code=status)

    @app.exception_handler(Exception)
    async def _bug(_: Request, exc: Exception) -> JSONResponse:
        # an unexpected failure still answers {error, fix} (the server logs the traceback)
        return ErrorResponse({"error": f"{type(exc).__name__}: {exc}",
                              "fix": "this is probably a bug in rnnvis: retry, and report it with the server log"},
                             status_code=500)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        errs = exc.errors()
        first = errs[0] if errs else {}
        where = ".".join(str(x) for x in first.get("loc", ()) if x not in ("body", "query", "path"))
        what = f"{where}: {first.get('msg', 'invalid request')}" if where else first.get("msg", "invalid request")
        # the detail echoes the input, which may be NaN or hold a lone surrogate: ErrorResponse renders both
        return ErrorResponse({"error": what, "fix": "see /docs for the parameters this endpoint takes",
                              "detail": jsonable_encoder(errs, custom_encoder={Exception: str})},
                             status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _framework_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        # 404, 405 and 400 raised by FastAPI/Starlette (no route, a static file missing, a body that is not
        # JSON) answer {error, fix} like every other error, and a 405's Allow lists the path's real methods
        status, headers = exc.status_code, dict(exc.headers or {})
        path = request.url.path
        if status in (404, 405):
            allowed = route_methods(app, request.scope)
            if allowed and request.method not in allowed:
                status, headers["Allow"] = 405, ", ".join(sorted(allowed))
            elif not allowed and path.startswith("/api"):
                status = 404
                headers.pop("Allow", None)
        shown = path if len(path) <= 200 else path[:200] + "…"
        if status == 404:
            what, fix = (f"no API endpoint or page at {shown}",
                         "see /docs for the paths of the API (a model name or job id is one path segment)")
        elif status == 405:
            what, fix = (f"{request.method} is not allowed on {shown}",
                         f"use {headers.get('Allow', 'another method')} (see /docs)")
        else:
            what, fix = _framework_message(exc)
        return ErrorResponse({"error": what, "fix": fix}, status_code=status, headers=headers)

    def cat() -> Catalog:
        return app.state.catalog

    @app.get("/api/health")
    def health() -> dict[str, str]:
        return {"status": "ok", "workspace": str(ws.home)}

    @app.get("/api/datasets", response_model=list[DatasetOut])
    def datasets() -> list[dict]:
        from ..data import list_datasets

        return list_datasets(ws)

    @app.get("/api/models", response_model=list[ModelOut])
    def models() -> list[dict]:
        return app.state.explorer.models()

    @app.get("/api/models/{ref}", response_model=ModelOut)
    def model(ref: str) -> dict:
        own = [m for m in app.state.explorer.models() if m["kind"] == "own" and ref in (m["name"], m["id"])]
        return own[0] if own else cat().find_model(ref)

    app.include_router(explore_router(app.state.explorer))
    from .routes_perf import perf_router  # noqa: E402 - issue 5: performance, errors, training, compare
    app.include_router(perf_router(app.state.explorer))
    from .routes_intervene import intervene_router; app.include_router(intervene_router(app.state.explorer))  # noqa: E402,E702 - issue 16

    @app.get("/api/runs", response_model=list[RunOut])
    def runs() -> list[dict]:
        return cat().runs()

    @app.get("/api/runs/{run_id}/metrics", response_model=RunMetricsOut)
    def run_metrics(run_id: int) -> dict:
        cat().get_run(run_id)  # 404 for an unknown run
        series = cat().metric_series(run_id)
        return {"run_id": run_id, "series": {
            split: {key: [{"step": s, "epoch": e, "value": v} for s, e, v in pts] for key, pts in keys.items()}
            for split, keys in series.items()}}

    @app.get("/api/baselines")
    def baselines(dataset: str | None = None) -> list[dict]:
        return cat().baselines(dataset)

    if (WEB_DIR / "index.html").exists():
        app.mount("/", StaticFiles(directory=WEB_DIR, html=True), name="web")
    else:
        @app.get("/", response_class=HTMLResponse)
        def index() -> str:
            return ("<!doctype html><title>rnnvis</title><h1>rnnvis</h1>"
                    "<p>The JSON API is running: see <a href='/docs'>/docs</a>. "
                    "The web app is not built in this installation.</p>")

    return app
