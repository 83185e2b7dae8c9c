"""Training a model from the app (POST /api/train, docs/api.md): the request checked against
`TrainConfig` (400/404 with a fix), then `rnnvis.models.train` as a cancellable job whose progress is
the training's steps and epochs; the model shows up in /api/models when done."""
from __future__ import annotations

import json
from typing import Any

import numpy as np

from ..errors import RnnvisError
from ..models.zoo import MAX_LAYERS
from .jobs import JobContext
from .session import Explorer


def _jsonable(x: Any) -> Any:
    """Plain JSON of a metrics dict (NaN → None)."""
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, float):
        return x if np.isfinite(x) else None
    return x


NAME_RE = r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}"
TRAIN_LIMITS = {"layers": (1, MAX_LAYERS), "emb": (1, 2048), "hidden": (1, 2048), "epochs": (1, 100),
                "batch_size": (1, 1024), "bptt": (1, 2000), "max_len": (1, 10_000), "eval_window": (1, 10_000),
                "log_every": (1, 1_000_000), "lr_step_size": (1, 1000), "patience": (0, 100),
                "max_vocab": (2, 200_000), "min_count": (1, 1_000_000), "num_threads": (1, 256)}


class _Stop(KeyboardInterrupt):
    """Raised from the training callback when the job is cancelled: `train` stops cleanly (run "stopped")."""


class _TrainProgress:
    """`train` callback: job progress per step and epoch, cancel between steps."""

    def __init__(self, ctx: JobContext, epochs: int):
        self.ctx, self.epochs = ctx, max(1, epochs)
        self.epoch, self.in_epoch = 0, 0
        self.stopped = False

    def _report(self, fraction: float, message: str) -> None:
        if self.ctx.cancelled:
            self.stopped = True
            raise _Stop()
        from .jobs import JobCancelled

        try:
            self.ctx.progress(fraction, message)
        except JobCancelled:
            self.stopped = True
            raise _Stop() from None

    def _run(self, info: dict) -> None:
        run_id = info.get("run_id")
        if run_id is not None and self.ctx.job.meta.get("run_id") != run_id:
            self.ctx.set_meta(run_id=int(run_id))

    def on_step(self, info: dict) -> None:
        self._run(info)
        if info["epoch"] != self.epoch:
            self.epoch, self.in_epoch = info["epoch"], 0
        self.in_epoch += 1
        steps = max(1, int(info.get("epoch_steps") or 1))
        f = (self.epoch - 1 + min(1.0, self.in_epoch / steps)) / self.epochs
        self._report(0.98 * f, f"epoch {self.epoch} of {self.epochs}, step {self.in_epoch} of {steps}, "
                               f"loss {info['loss']:.3f}")

    def on_epoch(self, info: dict) -> None:
        self._run(info)
        v = info.get("valid") or {}
        shown = ", ".join(f"valid {k} {v[k]:.4g}" for k in ("ppl", "bpc", "accuracy") if isinstance(v.get(k), float))
        self._report(0.98 * info["epoch"] / self.epochs,
                     f"epoch {info['epoch']} done" + (f": {shown}" if shown else ""))


def _check_train_value(key: str, value: Any, default: Any) -> None:
    def bad(fix: str) -> RnnvisError:
        return RnnvisError(f"training option {key}={value!r} is not valid", fix)

    if key in TRAIN_LIMITS and value is not None:
        lo, hi = TRAIN_LIMITS[key]
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            raise bad(f"use a whole number in {lo}..{hi}")
        return
    if value is None:
        if default is not None and key not in ("clip", "time_budget_s", "max_train_tokens", "max_vocab",
                                                "patience", "num_threads"):
            raise bad("give a value")
        return
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise bad("use true or false")
    elif isinstance(default, int) or key in ("max_train_tokens",):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise bad("use a whole number ≥ 0")
    elif isinstance(default, float) or key in ("clip", "time_budget_s"):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value) or value < 0:
            raise bad("use a number ≥ 0")
    elif isinstance(default, str):
        if not isinstance(value, str) or len(value) > 64:
            raise bad("use a short string")
    elif isinstance(default, (tuple, list)):
        if not isinstance(value, (list, tuple)) or len(value) != 3 or \
                not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in value):
            raise bad("use three fractions, e.g. [0.8, 0.1, 0.1]")
    elif isinstance(default, dict):
        if not isinstance(value, dict) or len(json.dumps(value, default=str)) > 10_000:
            raise bad("use a small JSON object")


def train_config(ex: Explorer, body: Any) -> tuple[Any, Any]:
    """(TrainConfig, data set name) from a POST /api/train body, checked (400/404 with a fix)."""
    import dataclasses
    import re

    from ..data.registry import DATASETS, list_datasets
    from ..errors import NotFound
    from ..models import TrainConfig

    if not isinstance(body, dict):
        raise RnnvisError("the body must be a JSON object", 'send e.g. {"dataset": "brown", "cell": "lstm"}')
    body = dict(body)
    dataset = body.pop("dataset", None)
    if not isinstance(dataset, str) or not dataset:
        raise RnnvisError("no data set given", 'send {"dataset": "<name>", ...}; GET /api/datasets lists them')
    own = getattr(ex, "_own_data", {})
    if dataset in own:
        corpus = own[dataset]
        task, level = corpus.task, corpus.level
    elif dataset in DATASETS:
        row = next(r for r in list_datasets(ex.ws) if r["name"] == dataset)
        if not row["fetched"]:
            raise RnnvisError(f"the data set {dataset!r} is not fetched yet",
                              f"fetch it first: rnnvis data get {dataset}")
        task, level = DATASETS[dataset].task, DATASETS[dataset].level
    else:
        raise NotFound(f"unknown data set {dataset!r}",
                       f"use one of {', '.join(sorted(set(DATASETS) | set(own)))}")
    fields = {f.name: f for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(body) - set(fields))
    if unknown:
        raise RnnvisError(f"unknown training option(s) {', '.join(str(u)[:40] for u in unknown[:10])}",
                          f"known options: dataset, {', '.join(sorted(fields))}")
    defaults = TrainConfig()
    for key, value in body.items():
        _check_train_value(key, value, getattr(defaults, key))
    body.setdefault("task", "classify" if task == "classify" else "lm")
    body.setdefault("level", level)
    cell = body.get("cell", defaults.cell)
    name = body.setdefault("name", f"{dataset}-{cell}-{body.get('hidden', defaults.hidden)}")
    if not re.fullmatch(NAME_RE, name) or name in (".", ".."):
        raise RnnvisError(f"model name {name!r} cannot be used",
                          "use 1-64 letters, digits, '.', '-' or '_', starting with a letter or digit")
    if any(m["name"] == name for m in ex.models()):
        raise RnnvisError(f"a model named {name!r} exists already", "choose another name")
    cfg = TrainConfig.from_json(body)
    cfg.validate()
    if cfg.task == "classify" and task != "classify":
        raise RnnvisError(f"the data set {dataset!r} has no class labels", 'train a language model ("task": "lm")')
    return cfg, dataset


def start_training(ex: Explorer, body: Any):
    """The Job training a model as POST /api/train asks; it shows up in /api/models when done."""
    from ..models import train
    from .jobs import JobCancelled

    cfg, dataset = train_config(ex, body)
    if cfg.device == "auto":
        cfg.device = getattr(ex, "device", "cpu") or "cpu"

    def run(ctx: JobContext) -> dict:
        ctx.progress(0.0, f"loading {dataset}")
        corpus = ex.corpus(dataset)
        cb = _TrainProgress(ctx, cfg.epochs)
        result = train(corpus, cfg, ex.ws, ex.catalog, progress=False, callbacks=[cb])
        if cb.stopped or result.interrupted:
            raise JobCancelled(f"training of {cfg.name} was cancelled")
        return {"name": cfg.name, "run_id": result.run_id, "model_id": result.model_id,
                "epochs_run": result.epochs_run, "stopped_early": result.stopped_early,
                "metrics": _jsonable(result.metrics)}

    # meta: the model's name now, its run_id once the run exists (the first training step)
    return ex.jobs.submit("train", f"train {cfg.name} ({cfg.cell}, {cfg.layers}×{cfg.hidden}) on {dataset}", run,
                          key=f"train:{cfg.name}", meta={"model": cfg.name, "dataset": dataset})


__all__ = ["start_training", "train_config"]
