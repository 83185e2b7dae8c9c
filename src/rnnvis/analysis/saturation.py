"""Gate saturation (Karpathy, Johnson, Fei-Fei 2015): how often each gate unit is nearly shut or open.

For sigmoid gates (LSTM i f o, GRU r z), values lie in [0, 1]: a unit is left-saturated on a
step when its value is < 0.1 and right-saturated when > 0.9 (the recorder folds these counts as
`below` and `above`). Candidate gates (LSTM g, GRU n) are tanh-valued in [-1, 1], where 0.1 is
the middle of the range, not an edge: for them left means < -0.9 and right means > 0.9, so
"saturated" is |value| > 0.9. The recorder folds exactly these counts: its `below` is < 0.1 for
sigmoid gates and < -0.9 for tanh gates, so its counts can be passed as they are.

Stream names follow the uniform scheme `layer1.fwd.gate.f`; non-gate streams are ignored.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np

from rnnvis.errors import RnnvisError

LOW, HIGH = 0.1, 0.9
TANH_GATES = ("g", "n")


def parse_gate_name(name: str) -> tuple[str, str, str] | None:
    """(layer, direction, gate) of a gate stream such as 'layer1.fwd.gate.f'; None for other streams."""
    parts = name.split(".")
    if len(parts) < 2 or parts[-2] != "gate":
        return None
    head = parts[:-2]
    layer = head[0] if head else ""
    direction = ".".join(head[1:]) if len(head) > 1 else ""
    return layer, direction, parts[-1]


def is_tanh_gate(gate: str) -> bool:
    """True for tanh-valued candidate gates (LSTM g, GRU n)."""
    return gate in TANH_GATES


def saturation_fractions(values: np.ndarray, tanh: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(left (units,), right (units,)) fraction of steps saturated, from values (tokens, units)."""
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 2 or v.shape[0] == 0:
        raise RnnvisError(f"gate values must be (tokens, units) with tokens > 0, got {v.shape}",
                          "record at least one token")
    left = (v < -HIGH) if tanh else (v < LOW)
    return left.mean(0), (v > HIGH).mean(0)


@dataclass(frozen=True)
class StreamSaturation:
    """Saturation of the units of one gate stream."""

    name: str
    layer: str
    direction: str
    gate: str
    tanh: bool  # thresholds: < -0.9 / > 0.9 when True, else < 0.1 / > 0.9
    count: int  # steps seen
    left: np.ndarray  # (units,) fraction of steps left-saturated
    right: np.ndarray  # (units,) fraction of steps right-saturated

    @property
    def saturated(self) -> np.ndarray:
        """(units,) fraction of steps in either tail."""
        return self.left + self.right


@dataclass(frozen=True)
class SaturationSummary:
    """Mean fractions over all units of one gate type, in one layer or ('*') in all layers."""

    layer: str
    gate: str
    units: int
    left: float
    right: float
    saturated: float


@dataclass(frozen=True)
class GateSaturation:
    """Per-stream saturation arrays and a per gate type summary."""

    streams: tuple[StreamSaturation, ...]
    summary: tuple[SaturationSummary, ...]  # per (layer, gate), then per gate over all layers ('*')

    def get(self, name: str) -> StreamSaturation:
        for s in self.streams:
            if s.name == name:
                return s
        raise RnnvisError(f"no gate stream {name!r}", f"choose one of {[s.name for s in self.streams]}")

    def summary_of(self, gate: str, layer: str = "*") -> SaturationSummary:
        for s in self.summary:
            if s.gate == gate and s.layer == layer:
                return s
        raise RnnvisError(f"no summary for gate {gate!r} in layer {layer!r}", "check the gate and layer names")


def _summarise(streams: list[StreamSaturation]) -> tuple[SaturationSummary, ...]:
    groups: dict[tuple[str, str], list[StreamSaturation]] = {}
    for s in streams:
        groups.setdefault((s.layer, s.gate), []).append(s)
        groups.setdefault(("*", s.gate), []).append(s)
    out = []
    for (layer, gate), members in sorted(groups.items(), key=lambda kv: (kv[0][0] == "*", kv[0])):
        left = np.concatenate([m.left for m in members])
        right = np.concatenate([m.right for m in members])
        out.append(SaturationSummary(layer, gate, int(left.size), float(left.mean()), float(right.mean()),
                                     float((left + right).mean())))
    return tuple(out)


def _build(items: list[StreamSaturation]) -> GateSaturation:
    if not items:
        raise RnnvisError("no gate streams given", "pass streams named like 'layer1.fwd.gate.f' (LSTM or GRU)")
    items.sort(key=lambda s: s.name)
    return GateSaturation(tuple(items), _summarise(items))


def gate_saturation(values: Mapping[str, np.ndarray]) -> GateSaturation:
    """Saturation from per-token gate values {stream name: (tokens, units)}; other streams ignored."""
    items = []
    for name, v in values.items():
        parsed = parse_gate_name(name)
        if parsed is None:
            continue
        tanh = is_tanh_gate(parsed[2])
        left, right = saturation_fractions(v, tanh)
        items.append(StreamSaturation(name, *parsed, tanh, int(np.shape(v)[0]), left, right))
    return _build(items)


def gate_saturation_from_counts(counts: Mapping[str, tuple[np.ndarray, np.ndarray, int]]) -> GateSaturation:
    """Saturation from folded counts {stream name: (left count (units,), right count (units,), steps)}.

    The recorder's `below`/`above` are these counts for every gate (tanh gates: below = < -0.9).
    """
    items = []
    for name, (left, right, n) in counts.items():
        parsed = parse_gate_name(name)
        if parsed is None:
            continue
        n = int(n)
        if n <= 0:
            raise RnnvisError(f"stream {name!r} has no steps", "record at least one token")
        left = np.asarray(left, dtype=np.float64)
        right = np.asarray(right, dtype=np.float64)
        if left.shape != right.shape or left.ndim != 1:
            raise RnnvisError(f"left {left.shape} and right {right.shape} counts of {name!r} differ",
                              "pass one count per unit for both")
        items.append(StreamSaturation(name, *parsed, is_tanh_gate(parsed[2]), n, left / n, right / n))
    return _build(items)
