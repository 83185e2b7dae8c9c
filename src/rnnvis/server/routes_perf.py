"""HTTP routes of performance, errors, training and compare mode (docs/api.md, issue 5).

Thin handlers over `rnnvis.explore.perf` and `rnnvis.explore.compare`; errors map as in
`create_app` (RnnvisError 400, NotFound 404, NotReady 409 with the job).
"""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Query
from fastapi.responses import JSONResponse

from ..explore.session import Explorer
from .routes_explore import SplitQuery, View

MAX_REF = 200  # characters of a model reference in a query


def perf_router(ex: Explorer) -> APIRouter:
    from ..explore import compare as cmp
    from ..explore import perf

    r = APIRouter()

    @r.get("/api/models/{ref}/metrics", tags=["performance"])
    def metrics(ref: View) -> JSONResponse:
        return JSONResponse(perf.metrics(ex, ref))

    @r.get("/api/models/{ref}/errors", tags=["performance"])
    def errors(ref: View) -> JSONResponse:
        return JSONResponse(perf.errors(ex, ref))

    @r.get("/api/models/{ref}/training", tags=["performance"])
    def training(ref: View) -> JSONResponse:
        return JSONResponse(perf.training(ex, ref))

    @r.get("/api/compare", tags=["compare"])
    def compare(a: str = Query(..., min_length=1, max_length=MAX_REF),
                b: str = Query(..., min_length=1, max_length=MAX_REF),
                stream: str | None = Query(None, max_length=MAX_REF), split: SplitQuery = None) -> JSONResponse:
        return JSONResponse(cmp.compare(ex, ex.view(a, split), ex.view(b, split), stream or None))

    @r.get("/api/compare/tokens", tags=["compare"])
    def compare_tokens(a: str = Query(..., min_length=1, max_length=MAX_REF),
                       b: str = Query(..., min_length=1, max_length=MAX_REF),
                       doc: int = Query(..., ge=0), split: SplitQuery = None) -> JSONResponse:
        return JSONResponse(cmp.compare_tokens(ex, ex.view(a, split), ex.view(b, split), doc))

    @r.post("/api/train", tags=["jobs"])
    def train(body: Any = Body(...)) -> JSONResponse:
        return JSONResponse(perf.start_training(ex, body).to_json())

    return r


__all__ = ["perf_router"]
