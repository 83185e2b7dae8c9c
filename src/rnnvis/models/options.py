"""The allowed values of every training option, declared once: `TrainConfig.validate` checks them
for `rnnvis.train`, the CLI and POST /api/train alike."""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any

from ..errors import RnnvisError
from .zoo import CELLS, MAX_LAYERS, POOLINGS

OPTIMIZERS = ("adam", "sgd")
SCHEDULES = ("none", "plateau", "cosine", "step")


@dataclass(frozen=True)
class Limit:
    """The allowed values of one numeric training option: a finite number (a whole one if `integer`) in
    [lo, hi] (`lo_open`: lo itself excluded); `optional`: None is allowed too."""

    lo: float
    hi: float
    integer: bool = False
    lo_open: bool = False
    optional: bool = False

    def describe(self) -> str:
        kind = "a whole number" if self.integer else "a finite number"
        lo = f"> {self.lo:g}" if self.lo_open else f"≥ {self.lo:g}"
        return f"{kind} {lo} and ≤ {self.hi:g}" + (" (or unset)" if self.optional else "")

    def check(self, key: str, value: Any) -> None:
        if value is None and self.optional:
            return
        kind = numbers.Integral if self.integer else numbers.Real
        ok = isinstance(value, kind) and not isinstance(value, bool) \
            and (isinstance(value, numbers.Integral) or math.isfinite(value)) \
            and (value > self.lo if self.lo_open else value >= self.lo) and value <= self.hi
        if not ok:
            raise RnnvisError(f"training option {key}={value!r} is out of range: it must be {self.describe()}",
                              f"set {key} (--{key.replace('_', '-')}) to a value in that range")


CHOICES: dict[str, tuple[str, tuple[str, ...]]] = {  # option: (its name in messages, its choices)
    "task": ("task", ("lm", "classify")), "level": ("level", ("word", "char")), "cell": ("cell type", CELLS),
    "pooling": ("pooling", POOLINGS), "optimizer": ("optimizer", OPTIMIZERS),
    "lr_schedule": ("lr schedule", SCHEDULES),
}
FLAGS = ("bidirectional", "tie_weights", "lower")
INT64 = 2 ** 63 - 1
LIMITS: dict[str, Limit] = {  # every numeric option of TrainConfig, declared once
    "layers": Limit(1, MAX_LAYERS, integer=True),  # the model zoo's limit
    "emb": Limit(1, 65_536, integer=True),
    "hidden": Limit(1, 65_536, integer=True),
    "dropout": Limit(0, 1 - 1e-9),  # [0, 1): a dropout of 1 drops everything
    "max_vocab": Limit(2, 100_000_000, integer=True, optional=True),
    "min_count": Limit(1, INT64, integer=True),
    "lr": Limit(0, 100, lo_open=True),  # SGD on word LMs uses up to ~20; 1e308 only overflows Adam
    "weight_decay": Limit(0, 10),
    "lr_gamma": Limit(0, 1, lo_open=True),
    "lr_step_size": Limit(1, 1_000_000, integer=True),
    "clip": Limit(0, 1e6, optional=True),  # 0 or unset: no clipping; < 0 would ascend the gradient
    "epochs": Limit(1, 1_000_000, integer=True),
    "batch_size": Limit(1, 1_000_000, integer=True),
    "bptt": Limit(1, 1_000_000, integer=True),
    "max_len": Limit(1, 100_000_000, integer=True),
    "eval_window": Limit(1, 100_000_000, integer=True),
    "max_train_tokens": Limit(1, INT64, integer=True, optional=True),
    "time_budget_s": Limit(0, 1e9, lo_open=True, optional=True),
    "patience": Limit(0, 1_000_000, integer=True, optional=True),
    "seed": Limit(-INT64, INT64, integer=True),
    "split_seed": Limit(-INT64, INT64, integer=True),
    "log_every": Limit(1, INT64, integer=True),
    "num_threads": Limit(1, 4096, integer=True, optional=True),
}
