"""The FastAPI app: thin handlers over the Python API, typed JSON, OpenAPI at /docs."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel

from ..catalog import Catalog
from ..errors import NotFound, RnnvisError
from ..workspace import Workspace
from .security import GuardMiddleware, allowed_hosts

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


def create_app(ws: Workspace, host: str = "127.0.0.1", token: str | None = None) -> FastAPI:
    app = FastAPI(title="rnnvis", version="0.1.0",
                  description="Visual analysis of recurrent neural networks: JSON API of the web app.")
    app.state.ws = ws
    app.state.catalog = Catalog(ws.catalog_path)
    app.add_middleware(GuardMiddleware, hosts=None if host in ("0.0.0.0", "::") else allowed_hosts(host),
                       token=token)

    @app.exception_handler(RnnvisError)
    async def _rnnvis_error(_: Request, exc: RnnvisError) -> JSONResponse:
        return JSONResponse({"error": exc.what, "fix": exc.fix},
                            status_code=404 if isinstance(exc, NotFound) else 400)

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
        return cat().models()

    @app.get("/api/models/{ref}", response_model=ModelOut)
    def model(ref: str) -> dict:
        return cat().find_model(ref)

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
