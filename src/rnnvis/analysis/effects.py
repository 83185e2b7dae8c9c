"""Effects of an intervention, next to random-unit controls (issue 16).

Language models: the change of loss per token Δ = loss(edited) - loss(original), summed per group
(all tokens, the predicted word, its part of speech, an annotation, an error category) by
`EffectSums` while a corpus streams by: memory holds one row of sums per group, never per token.
Every group also carries the Δ of each control draw (the same number of random units ablated), so
that an effect reads against noise: `excess` = Δ - mean control Δ, `z` = excess / control spread.

Classifiers: `classifier_effects` compares class probabilities and accuracy per slice
(`error_slices` families: length, negation, gold class, confidence) before and after.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import RnnvisError


@dataclass(frozen=True)
class GroupEffect:
    """Effect on one group of tokens (or examples). Means are over the group's tokens; the control
    mean/std are over the draws of each draw's mean."""

    family: str  # 'all', 'word', 'pos', 'annotation', 'error' (LM); 'all', slice families (classifier)
    name: str
    tokens: int
    before: float  # mean loss (LM) / accuracy (classifier) before the edit
    after: float  # the same after the edit
    delta: float  # mean Δ loss (LM) / mean Δ p(gold class) (classifier)
    control_mean: float
    control_std: float

    @property
    def excess(self) -> float:
        return self.delta - self.control_mean

    @property
    def z(self) -> float:
        """Excess in units of the control spread (inf when the controls did not vary at all)."""
        if self.control_std > 0:
            return self.excess / self.control_std
        return 0.0 if self.excess == 0 else float(np.sign(self.excess)) * float("inf")


@dataclass(frozen=True)
class Effects:
    """All groups of one intervention; `draws` random-unit control draws."""

    kind: str  # 'lm' | 'classifier'
    tokens: int
    draws: int
    groups: tuple[GroupEffect, ...]
    correlation: dict | None = None  # {annotation: (units,) Pearson r of the edited units}, LM only

    def family(self, family: str) -> list[GroupEffect]:
        """The groups of one family, largest |excess| first."""
        return sorted((g for g in self.groups if g.family == family), key=lambda g: (-abs(g.excess), g.name))

    def get(self, family: str, name: str) -> GroupEffect:
        for g in self.groups:
            if g.family == family and g.name == name:
                return g
        raise RnnvisError(f"no group {family}={name!r} in the effects", "choose one of the listed groups")


class EffectSums:
    """Running sums per (family, name): tokens, loss before, Δ of the edit and of each control draw."""

    def __init__(self, draws: int):
        self.draws = int(draws)
        self._sums: dict[tuple[str, str], np.ndarray] = {}  # [n, before, delta, ctrl_1..K]

    def add(self, family: str, names, before: np.ndarray, delta: np.ndarray, controls: np.ndarray) -> None:
        """Fold n tokens: names (n,) group of each token ('' or None: in no group of this family), or
        one str for all; before/delta (n,); controls (draws, n). Tokens with a NaN loss are skipped."""
        before = np.asarray(before, np.float64)
        delta = np.asarray(delta, np.float64)
        controls = np.asarray(controls, np.float64).reshape(self.draws, -1)
        ok = np.isfinite(before) & np.isfinite(delta)
        if isinstance(names, str):
            keys, inv = np.array([names], dtype=object), np.zeros(before.shape[0], np.int64)
        else:
            names = np.asarray(names, dtype=object)
            ok &= np.array([bool(n) for n in names], dtype=bool)
            if not ok.any():
                return
            keys, inv = np.unique(names[ok].astype(str), return_inverse=True)
            full = np.full(before.shape[0], -1, np.int64)
            full[ok] = inv
            inv = full
        if not ok.any():
            return
        idx = inv[ok]
        m = keys.shape[0]
        cols = [np.bincount(idx, minlength=m).astype(np.float64),
                np.bincount(idx, weights=before[ok], minlength=m),
                np.bincount(idx, weights=delta[ok], minlength=m)]
        cols += [np.bincount(idx, weights=np.nan_to_num(c[ok]), minlength=m) for c in controls]
        block = np.stack(cols, 1)  # (groups, 3 + draws)
        for j, k in enumerate(keys.tolist()):
            key = (family, str(k))
            if key in self._sums:
                self._sums[key] += block[j]
            else:
                self._sums[key] = block[j].copy()

    def result(self, kind: str = "lm", min_tokens: int = 1) -> Effects:
        groups = []
        total = 0
        for (family, name), s in self._sums.items():
            n = s[0]
            if n < min_tokens:
                continue
            if family == "all":
                total = int(n)
            ctrl = s[3:] / n  # (draws,) each draw's mean Δ
            groups.append(GroupEffect(family, name, int(n), float(s[1] / n), float((s[1] + s[2]) / n),
                                      float(s[2] / n), float(ctrl.mean()) if ctrl.size else 0.0,
                                      float(ctrl.std(ddof=1)) if ctrl.size > 1 else 0.0))
        groups.sort(key=lambda g: (g.family != "all", g.family, -g.tokens, g.name))
        return Effects(kind, total, self.draws, tuple(groups))


class CorrelationSums:
    """Pearson r of each edited unit with each annotation (on the same token, as discovery ranks
    units), from running sums: the correlational score shown next to the causal effect."""

    def __init__(self):
        self._sums: dict[str, list[np.ndarray]] = {}  # name -> [n, Σx, Σx², Σy, Σy², Σxy]

    def add(self, name: str, x: np.ndarray, y: np.ndarray) -> None:
        """x (n, units) unit values, y (n,) annotation (bool or number; NaN rows skipped)."""
        x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
        ok = np.isfinite(y) & np.isfinite(x).all(1)
        x, y = x[ok], y[ok]
        part = [np.full(x.shape[1], float(y.size)), x.sum(0), (x * x).sum(0), np.full(x.shape[1], y.sum()),
                np.full(x.shape[1], (y * y).sum()), x.T @ y]
        if name in self._sums:
            self._sums[name] = [a + b for a, b in zip(self._sums[name], part)]
        else:
            self._sums[name] = part

    def result(self) -> dict[str, np.ndarray]:
        """{annotation: (units,) r}; NaN where a unit or the annotation did not vary."""
        out = {}
        for name, (n, sx, sxx, sy, syy, sxy) in self._sums.items():
            n = np.maximum(n, 1)
            cov = sxy / n - sx * sy / n ** 2
            vx, vy = sxx / n - (sx / n) ** 2, syy / n - (sy / n) ** 2
            with np.errstate(invalid="ignore", divide="ignore"):
                r = cov / np.sqrt(vx * vy)
            out[name] = np.where((vx > 1e-12) & (vy > 1e-12), r, np.nan)
        return out


def classifier_effects(tokens, probs: np.ndarray, edited: np.ndarray, controls: np.ndarray, labels: np.ndarray,
                       class_names=None) -> Effects:
    """Effects on a classifier: probs/edited (n, classes) before/after the edit, controls (draws, n,
    classes), labels (n,). Per slice ('all' and the `error_slices` families, slices taken before the
    edit): accuracy before/after, mean Δ p(gold) of the edit and of each control draw."""
    from .slices import error_slices

    p, q = np.asarray(probs, np.float64), np.asarray(edited, np.float64)
    ctrl = np.asarray(controls, np.float64)
    y = np.asarray(labels, np.int64)
    if q.shape != p.shape or ctrl.shape[1:] != p.shape:
        raise RnnvisError(f"probabilities of shapes {p.shape}, {q.shape}, {ctrl.shape} do not match",
                          "pass (n, classes) before and after, (draws, n, classes) for the controls")
    n = p.shape[0]
    rows = np.arange(n)
    dp = q[rows, y] - p[rows, y]  # (n,)
    dc = ctrl[:, rows, y] - p[None, rows, y]  # (draws, n)
    ok_before, ok_after = p.argmax(1) == y, q.argmax(1) == y
    sl = error_slices(tokens, p, y, class_names=class_names, max_errors=0)
    members = [("all", "all", rows)] + [(s.family, s.name, np.asarray(s.indices)) for s in sl.slices]
    groups = []
    for family, name, idx in members:
        if idx.size == 0:
            continue
        c = dc[:, idx].mean(1)
        groups.append(GroupEffect(family, name, int(idx.size), float(ok_before[idx].mean()),
                                  float(ok_after[idx].mean()), float(dp[idx].mean()), float(c.mean()),
                                  float(c.std(ddof=1)) if c.size > 1 else 0.0))
    return Effects("classifier", n, int(ctrl.shape[0]), tuple(groups))


def random_units(units: int, k: int, exclude, draws: int, seed: int = 0) -> list[tuple[int, ...]]:
    """`draws` seeded draws of k distinct units among `units`, none of them in `exclude`."""
    pool = np.setdiff1d(np.arange(units), np.asarray(list(exclude), dtype=np.int64))
    if pool.size < k:
        pool = np.arange(units)  # too few others: draw from all units
    rng = np.random.default_rng(seed)
    return [tuple(sorted(int(u) for u in rng.choice(pool, size=k, replace=False))) for _ in range(draws)]


__all__ = ["CorrelationSums", "EffectSums", "Effects", "GroupEffect", "classifier_effects", "random_units"]
