"""HTTP routes of jobs, one model's info and view recording, and every exploration view.

Each handler is thin: it checks the request's shape (pydantic), calls one function of
`rnnvis.explore` and returns its JSON. Heavy handlers are plain `def` (FastAPI runs them in its
thread pool). Errors: RnnvisError -> 400, NotFound -> 404, NotReady -> 409 with the job,
TooLarge -> 413, QueueFull -> 503 (see `create_app`); body size, read time and the answer's
deadline: `limits.RequestLimits`.
"""
from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import AfterValidator, BaseModel, Field

from ..errors import RnnvisError
from ..explore.sentence import MAX_TEXT, TooLarge  # noqa: F401 - TooLarge: 413 (create_app)
from ..explore.session import Explorer


def _unicode(text: str | None) -> str | None:
    """Typed text must be valid Unicode: a lone surrogate (JSON "\\ud800") cannot be encoded or shown."""
    if text is not None:
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ValueError(f"the text holds an unpaired surrogate (U+{ord(text[exc.start]):04X}) at character "
                             f"{exc.start}, which is not valid Unicode; send the text as UTF-8") from None
    return text


Text = Annotated[str, AfterValidator(_unicode)]


class Threshold(BaseModel):
    kind: Literal["abs", "pct"] = "abs"
    value: float = 0.5


class SentenceIn(BaseModel):
    text: Text | None = None
    doc: int | None = None
    start: int | None = Field(None, ge=0)
    stop: int | None = Field(None, ge=1)
    streams: list[str] | None = Field(None, max_length=32)
    k: int | None = None
    stream: str | None = None


class SaliencyIn(BaseModel):
    text: Text
    target: int | str | None = None
    steps: int = 32


class SelectIn(BaseModel):
    stream: str | None = None
    doc: int
    start: int = Field(ge=0)
    stop: int = Field(ge=1)
    threshold: Threshold = Threshold()
    off_after: bool = False


class MatchIn(BaseModel):
    stream: str | None = None
    units: list[int] = Field(max_length=4096)
    threshold: Threshold = Threshold()
    min_fraction: float = 1.0
    min_len: int = 1
    max_len: int | None = None
    limit: int = 50


def _json(obj: Any) -> JSONResponse:
    return JSONResponse(obj)


def _csv(s: str | None) -> list[str]:
    return [x.strip() for x in (s or "").split(",") if x.strip()]


def _words(s: str | None) -> list[str]:
    """Comma-separated words, or a JSON array of strings: exact, for the blank characters (space,
    newline, tab) and the comma of character models, which a comma list trims away."""
    if s and s.startswith("["):
        try:
            words = json.loads(s)
        except ValueError:
            words = None
        if isinstance(words, list) and all(isinstance(w, str) for w in words):
            return [w for w in words if w]
    return _csv(s)


def _ints(s: str | None, what: str) -> list[int] | None:
    parts = _csv(s)
    if not parts:
        return None
    try:
        return [int(p) for p in parts]
    except ValueError:
        raise RnnvisError(f"{what}={s!r} is not a list of unit numbers", f"pass e.g. {what}=3,17,42") from None


SplitQuery = Annotated[str | None, Query(
    max_length=20, description="the split whose view recording the view reads (train, valid, test, or own for "
    "an own model's own data); default: the model's default split (test)")]


def view_ref(request: Request, ref: str, split: SplitQuery = None) -> str:
    """The FastAPI dependency of every view route: the path's model `ref` bound to the `split` query
    parameter (`Explorer.view` of the app's explorer: 404 naming the model's splits for an unknown one)."""
    return request.app.state.explorer.view(ref, split)


View = Annotated[str, Depends(view_ref)]  # a model ref on the chosen split (a `ViewRef`)


def explore_router(ex: Explorer) -> APIRouter:
    from ..explore import discovery as disc
    from ..explore import memory, patterns
    from ..explore import sentence as sent

    r = APIRouter()

    # -- jobs ---------------------------------------------------------------------------
    @r.get("/api/jobs", tags=["jobs"])
    def jobs() -> JSONResponse:
        return _json([j.to_json() for j in ex.jobs.list()])

    @r.get("/api/jobs/{job_id}", tags=["jobs"])
    def job(job_id: str) -> JSONResponse:
        return _json(ex.jobs.get(job_id).to_json())

    @r.post("/api/jobs/{job_id}/cancel", tags=["jobs"])
    def cancel(job_id: str) -> JSONResponse:
        return _json(ex.jobs.cancel(job_id).to_json())

    # -- one model --------------------------------------------------------------------------
    @r.get("/api/models/{ref}/info", tags=["model"])
    def info(ref: View) -> JSONResponse:
        return _json(ex.info(ref))

    @r.post("/api/models/{ref}/record", tags=["model"])
    def record(ref: View) -> JSONResponse:
        return _json(ex.start_recording(ref).to_json())

    # -- exploration ------------------------------------------------------------------------
    @r.get("/api/models/{ref}/cocluster", tags=["explore"])
    def cocluster(ref: View, stream: str | None = None, k: int | None = None, min_count: int = 5,
                  max_words: int = 400) -> JSONResponse:
        return _json(memory.cocluster(ex, ref, stream, k, min_count, max_words))

    @r.get("/api/models/{ref}/word", tags=["explore"])
    def word(ref: View, word: str = Query(..., max_length=200), stream: str | None = None) -> JSONResponse:
        return _json(memory.word(ex, ref, stream, word))

    @r.get("/api/models/{ref}/unit", tags=["explore"])
    def unit(ref: View, unit: int, stream: str | None = None, k: int = 12) -> JSONResponse:
        return _json(memory.unit(ex, ref, stream, unit, k))

    @r.get("/api/models/{ref}/documents", tags=["explore"])
    def documents(ref: View, offset: int = 0, limit: int = 50, q: str | None = Query(None, max_length=200)
                  ) -> JSONResponse:
        return _json(sent.documents(ex, ref, offset, limit, q))

    @r.post("/api/models/{ref}/sentence", tags=["explore"])
    def sentence(ref: View, body: SentenceIn) -> JSONResponse:
        return _json(sent.sentence(ex, ref, text=body.text, doc=body.doc, start=body.start, stop=body.stop,
                                   streams=body.streams, k=body.k, stream=body.stream))

    @r.get("/api/models/{ref}/saturation", tags=["explore"])
    def saturation(ref: View) -> JSONResponse:
        return _json(memory.saturation(ex, ref))

    @r.get("/api/models/{ref}/radar", tags=["explore"])
    def radar(ref: View, words: str = Query(..., max_length=2000), stream: str | None = None,
              dims: str | None = Query(None, max_length=2000), n: int = 8) -> JSONResponse:
        return _json(memory.radar(ex, ref, stream, _words(words), _ints(dims, "dims"), n))

    @r.post("/api/models/{ref}/saliency", tags=["explore"])
    def saliency(ref: View, body: SaliencyIn) -> JSONResponse:
        return _json(sent.saliency(ex, ref, body.text, body.target, body.steps))

    @r.get("/api/models/{ref}/projection", tags=["explore"])
    def projection(ref: View, what: str = "units", stream: str | None = None, method: str = "pca",
                   text: str | None = Query(None, max_length=MAX_TEXT), doc: int | None = None,
                   start: int | None = None, stop: int | None = None) -> JSONResponse:
        return _json(memory.projection(ex, ref, what, stream, method, text, doc, start, stop))

    @r.get("/api/models/{ref}/discovery", tags=["explore"])
    def discovery(ref: View, annotations: str | None = Query(None, max_length=2000), top: int = 10) -> JSONResponse:
        return _json(disc.discovery(ex, ref, _csv(annotations) or None, top))

    @r.post("/api/models/{ref}/pattern/select", tags=["explore"])
    def pattern_select(ref: View, body: SelectIn) -> JSONResponse:
        return _json(patterns.select(ex, ref, body.stream, body.doc, body.start, body.stop,
                                     body.threshold.model_dump(), body.off_after))

    @r.post("/api/models/{ref}/pattern/match", tags=["explore"])
    def pattern_match(ref: View, body: MatchIn) -> JSONResponse:
        return _json(patterns.match(ex, ref, body.stream, body.units, body.threshold.model_dump(),
                                    body.min_fraction, body.min_len, body.max_len, body.limit))

    return r
