"""Training dynamics: tidy metric curves of a run, and how the network changes across checkpoints.

Curves: the catalog's metric series of a run, {split: {key: [(step, epoch, value), ...]}}
(`Catalog.metric_series(run_id)`), become one `Curve` per (split, key) with step, epoch and value
arrays sorted by step, plus a tidy row list (split, key, step, epoch, value) for plotting/JSON.

Checkpoints: given the states recorded on the same tokens at each checkpoint of a run
({stream name: (tokens, units)} per checkpoint, oldest first, the final model last), per stream:

- gate streams (`layer1.fwd.gate.f`): mean fraction of left- and right-saturated steps over the
  units (Karpathy et al. 2015 thresholds, see `rnnvis.analysis.saturation`);
- state streams (h, c): mean |Δh| = mean over units and over consecutive steps inside a document
  of |h_t - h_{t-1}| (how fast the memory moves; document starts are skipped), and linear CKA of
  the checkpoint's states to the final checkpoint's states (1 for the final one).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from rnnvis.analysis.saturation import is_tanh_gate, parse_gate_name, saturation_fractions
from rnnvis.analysis.similarity import linear_cka
from rnnvis.errors import RnnvisError


@dataclass(frozen=True)
class Curve:
    """One metric of one split over training."""

    split: str
    key: str
    step: np.ndarray  # (points,) int, ascending
    epoch: np.ndarray  # (points,) float, nan where not recorded
    value: np.ndarray  # (points,)

    def best(self, mode: str = "min") -> tuple[int, float]:
        """(step, value) of the best point: smallest value for mode 'min', largest for 'max'."""
        if mode not in ("min", "max") or self.value.size == 0:
            raise RnnvisError(f"cannot take the {mode!r} of curve {self.split}/{self.key}",
                              "use mode 'min' or 'max' on a non-empty curve")
        i = int(np.nanargmin(self.value) if mode == "min" else np.nanargmax(self.value))
        return int(self.step[i]), float(self.value[i])


@dataclass(frozen=True)
class TrainingCurves:
    """All metric curves of a run."""

    curves: tuple[Curve, ...]  # sorted by (split, key)

    @property
    def splits(self) -> tuple[str, ...]:
        return tuple(sorted({c.split for c in self.curves}))

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(sorted({c.key for c in self.curves}))

    def get(self, split: str, key: str) -> Curve:
        for c in self.curves:
            if c.split == split and c.key == key:
                return c
        raise RnnvisError(f"no curve {split}/{key}", f"choose one of {[f'{c.split}/{c.key}' for c in self.curves]}")

    def rows(self) -> list[dict]:
        """Tidy rows {split, key, step, epoch (None if absent), value}."""
        return [{"split": c.split, "key": c.key, "step": int(s), "epoch": None if np.isnan(e) else float(e),
                 "value": float(v)} for c in self.curves for s, e, v in zip(c.step, c.epoch, c.value)]


def training_curves(series: Mapping[str, Mapping[str, Sequence[tuple]]]) -> TrainingCurves:
    """Curves from {split: {key: [(step, epoch, value), ...]}} as returned by `Catalog.metric_series`."""
    curves = []
    for split in sorted(series):
        for key in sorted(series[split]):
            pts = list(series[split][key])
            if any(len(p) != 3 for p in pts):
                raise RnnvisError(f"metric points of {split}/{key} must be (step, epoch, value) triples",
                                  "pass Catalog.metric_series(run_id)")
            step = np.array([int(p[0]) for p in pts], dtype=np.int64)
            epoch = np.array([np.nan if p[1] is None else float(p[1]) for p in pts], dtype=np.float64)
            value = np.array([np.nan if p[2] is None else float(p[2]) for p in pts], dtype=np.float64)
            order = np.argsort(step, kind="stable")
            curves.append(Curve(str(split), str(key), step[order], epoch[order], value[order]))
    return TrainingCurves(tuple(curves))


@dataclass(frozen=True)
class CheckpointDynamics:
    """Per-stream statistics across the checkpoints of a run (oldest first, final last)."""

    checkpoints: tuple[str, ...]  # (checkpoints,) labels
    saturation_left: Mapping[str, np.ndarray]  # gate stream → (checkpoints,) mean left-saturated fraction
    saturation_right: Mapping[str, np.ndarray]  # gate stream → (checkpoints,) mean right-saturated fraction
    delta: Mapping[str, np.ndarray]  # state stream → (checkpoints,) mean |h_t - h_{t-1}| inside documents
    cka_to_final: Mapping[str, np.ndarray]  # state stream → (checkpoints,) linear CKA to the final checkpoint


def mean_abs_delta(values: np.ndarray, doc_ids: np.ndarray | None = None) -> float:
    """Mean |h_t - h_{t-1}| over units and consecutive steps of one document; values (tokens, units)."""
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 2:
        raise RnnvisError(f"states must be (tokens, units), got {v.shape}", "pass one stream of one checkpoint")
    same = np.ones(max(v.shape[0] - 1, 0), dtype=bool)
    if doc_ids is not None:
        d = np.asarray(doc_ids).reshape(-1)
        if d.size != v.shape[0]:
            raise RnnvisError(f"{d.size} doc ids for {v.shape[0]} tokens", "pass one doc id per token")
        same = d[1:] == d[:-1]
    if not same.any():
        return 0.0
    return float(np.abs(np.diff(v, axis=0)[same]).mean())


def checkpoint_dynamics(checkpoints: Sequence[Mapping[str, np.ndarray]], labels: Sequence[str] | None = None,
                        doc_ids: np.ndarray | None = None) -> CheckpointDynamics:
    """Gate saturation, mean |Δh| and CKA to the final checkpoint for each checkpoint's recorded streams."""
    if not checkpoints:
        raise RnnvisError("no checkpoints given", "pass the recorded streams of at least one checkpoint")
    names = tuple(str(x) for x in labels) if labels is not None else tuple(str(i) for i in range(len(checkpoints)))
    if len(names) != len(checkpoints):
        raise RnnvisError(f"{len(names)} labels for {len(checkpoints)} checkpoints", "pass one label each")
    final = checkpoints[-1]
    for label, ck in zip(names, checkpoints):
        missing = sorted(set(final) - set(ck))
        if missing:
            raise RnnvisError(f"checkpoint {label} lacks streams {missing}",
                              "record every checkpoint with the same streams")
    left: dict[str, np.ndarray] = {}
    right: dict[str, np.ndarray] = {}
    delta: dict[str, np.ndarray] = {}
    cka: dict[str, np.ndarray] = {}
    for stream in sorted(final):
        parsed = parse_gate_name(stream)
        if parsed is not None:
            fr = [saturation_fractions(ck[stream], is_tanh_gate(parsed[2])) for ck in checkpoints]
            left[stream] = np.array([f[0].mean() for f in fr])
            right[stream] = np.array([f[1].mean() for f in fr])
        else:
            delta[stream] = np.array([mean_abs_delta(ck[stream], doc_ids) for ck in checkpoints])
            cka[stream] = np.array([linear_cka(ck[stream], final[stream]) for ck in checkpoints])
    return CheckpointDynamics(names, left, right, delta, cka)


__all__ = ["CheckpointDynamics", "Curve", "TrainingCurves", "checkpoint_dynamics", "mean_abs_delta",
           "training_curves"]
