"""HTTP routes of interventions (docs/api.md, "Interventions", issue 16).

POST /api/models/{ref}/intervene: the effect of an edit over the view recording, next to random-unit
controls (an analysis job: 409 with the job while it runs, then the cached result);
POST /api/models/{ref}/intervene/text: one document or typed text, per token, answered at once.
Thin handlers over `rnnvis.explore.interventions`; errors map as in `create_app`.
"""
from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from ..explore.interventions import CONTROL_DRAWS, MAX_DRAWS, MAX_UNITS
from ..explore.session import Explorer
from .routes_explore import Text, View

MAX_NAME = 200


class EditIn(BaseModel):
    """Which units of which stream, and what to do with them."""

    units: list[int] = Field(min_length=1, max_length=MAX_UNITS, description="units of the stream")
    stream: str | None = Field(None, max_length=MAX_NAME, description="e.g. layer0.fwd.h; default: from layer/what")
    layer: int = Field(0, ge=0, le=64)
    what: str = Field("h", max_length=16, description="h, c or gate.<name> (gate.f, gate.z, ...)")
    direction: Literal["fwd", "bwd"] = "fwd"
    mode: Literal["zero", "mean", "value", "scale"] = "zero"
    value: float | None = Field(None, description="the constant of 'value', the factor of 'scale'")
    controls: int = Field(CONTROL_DRAWS, ge=0, le=MAX_DRAWS, description="random-unit control draws")
    seed: int = Field(0, ge=0, le=2**31 - 1)


class TextEditIn(BaseModel):
    units: list[int] = Field(min_length=1, max_length=MAX_UNITS)
    stream: str | None = Field(None, max_length=MAX_NAME)
    layer: int = Field(0, ge=0, le=64)
    what: str = Field("h", max_length=16)
    direction: Literal["fwd", "bwd"] = "fwd"
    mode: Literal["zero", "mean", "value", "scale", "patch"] = "zero"
    value: float | None = None
    controls: int = Field(CONTROL_DRAWS, ge=0, le=MAX_DRAWS)
    seed: int = Field(0, ge=0, le=2**31 - 1)
    doc: int | None = Field(None, ge=0, description="a document of the view recording")
    text: Text | None = Field(None, max_length=20_000, description="or a typed text")
    source: Text | None = Field(None, max_length=20_000, description="mode 'patch': the text whose states are copied")
    steps: list[int] | None = Field(None, max_length=4096, description="time steps edited (default: all)")


def intervene_router(ex: Explorer) -> APIRouter:
    from ..explore import interventions as iv

    r = APIRouter()

    @r.post("/api/models/{ref}/intervene", tags=["interventions"])
    def intervene(ref: View, body: EditIn) -> JSONResponse:
        return JSONResponse(iv.corpus_effects(ex, ref, **body.model_dump()))

    @r.post("/api/models/{ref}/intervene/text", tags=["interventions"])
    def intervene_text(ref: View, body: TextEditIn) -> JSONResponse:
        return JSONResponse(iv.text_effects(ex, ref, **body.model_dump()))

    return r


__all__ = ["intervene_router"]
