"""The FastAPI app: thin handlers over the Python API, typed JSON, OpenAPI at /docs."""
from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel

from ..catalog import Catalog
from ..errors import NotFound, RnnvisError
from ..workspace import Workspace
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
               explorer: "Explorer | None" = None) -> FastAPI:
    from ..explore.session import Explorer, NotReady
    from .routes_explore import BodyLimit, TooLarge, explore_router

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
    app.add_middleware(GuardMiddleware, hosts=None if host in ("0.0.0.0", "::") else allowed_hosts(host),
                       token=token)
    app.add_middleware(BodyLimit)

    @app.exception_handler(RnnvisError)
    async def _rnnvis_error(_: Request, exc: RnnvisError) -> JSONResponse:
        if isinstance(exc, NotReady):
            return JSONResponse({"error": exc.what, "fix": exc.fix, "job": exc.job.to_json()}, status_code=409)
        status = 404 if isinstance(exc, NotFound) else 413 if isinstance(exc, TooLarge) else 400
        return JSONResponse({"error": exc.what, "fix": exc.fix}, status_code=status)

    @app.exception_handler(Exception)
    async def _bug(_: Request, exc: Exception) -> JSONResponse:
        # an unexpected failure still answers {error, fix} (the server logs the traceback)
        return JSONResponse({"error": f"{type(exc).__name__}: {exc}",
                             "fix": "this is probably a bug in rnnvis: retry, and report it with the server log"},
                            status_code=500)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        errs = exc.errors()
        first = errs[0] if errs else {}
        where = ".".join(str(x) for x in first.get("loc", ()) if x not in ("body", "query", "path"))
        what = f"{where}: {first.get('msg', 'invalid request')}" if where else first.get("msg", "invalid request")
        return JSONResponse({"error": what, "fix": "see /docs for the parameters this endpoint takes",
                             "detail": jsonable_encoder(errs, custom_encoder={Exception: str})},
                            status_code=422)

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
