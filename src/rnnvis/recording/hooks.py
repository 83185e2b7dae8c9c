"""Find the recurrent layers of any torch module and capture their calls with scoped hooks.

Fused layers (`nn.RNN`, `nn.GRU`, `nn.LSTM`) and step cells (`nn.RNNCell`, `nn.GRUCell`,
`nn.LSTMCell`) are found by walking `named_modules()`. Hooks are registered inside a context
manager and removed in `finally`, so a failing forward never leaves a hook behind.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any, Iterator

from torch import nn

from rnnvis.errors import RnnvisError

FUSED_TYPES = (nn.RNN, nn.GRU, nn.LSTM)
CELL_TYPES = (nn.RNNCell, nn.GRUCell, nn.LSTMCell)


def cell_kind(module: nn.Module) -> str:
    """'rnn_tanh' | 'rnn_relu' | 'gru' | 'lstm' for a fused layer or a cell."""
    if isinstance(module, (nn.LSTM, nn.LSTMCell)):
        return "lstm"
    if isinstance(module, (nn.GRU, nn.GRUCell)):
        return "gru"
    if isinstance(module, (nn.RNN, nn.RNNCell)):
        nonlin = getattr(module, "nonlinearity", "tanh")
        if nonlin not in ("tanh", "relu"):
            raise RnnvisError(f"unsupported RNN nonlinearity {nonlin!r}", "use 'tanh' or 'relu'")
        return f"rnn_{nonlin}"
    raise RnnvisError(f"{type(module).__name__} is not a recurrent layer")


def stream_kinds(kind: str) -> tuple[str, ...]:
    """Stream suffixes a cell type produces, in a fixed order."""
    if kind == "lstm":
        return ("h", "c", "gate.i", "gate.f", "gate.g", "gate.o")
    if kind == "gru":
        return ("h", "gate.r", "gate.z", "gate.n")
    return ("h",)


@dataclass
class Target:
    """One recurrent module found inside the user's model.

    `prefix` is what stream names start with: '' for a single fused module, the module path
    otherwise (always the path for cells, per the naming rule `{module_path}.h`).
    """

    path: str
    module: nn.Module
    kind: str
    is_cell: bool
    prefix: str
    calls: list[tuple[tuple, dict, Any]] = field(default_factory=list)  # (args, kwargs, output)

    def stream_name(self, suffix: str, layer: int | None = None, direction: str | None = None) -> str:
        """Uniform stream name, e.g. 'encoder.rnn.layer0.fwd.gate.f' or 'cell.h'."""
        parts = [self.prefix] if self.prefix else []
        if layer is not None:
            parts.append(f"layer{layer}.{direction}")
        parts.append(suffix)
        return ".".join(parts)


def find_recurrent(model: nn.Module) -> list[Target]:
    """Every fused recurrent layer and every recurrent cell inside `model`, in module order.

    Raises RnnvisError when there is none. Recurrent modules nested inside another recurrent
    module (not possible for torch's own layers) are not searched.
    """
    found: list[tuple[str, nn.Module]] = [
        (path, m) for path, m in model.named_modules() if isinstance(m, FUSED_TYPES + CELL_TYPES)
    ]
    if not found:
        raise RnnvisError(
            f"{type(model).__name__} contains no nn.RNN, nn.GRU, nn.LSTM or *Cell module",
            "pass a model built from torch's recurrent layers (custom cells are not recognised)",
        )
    several = len(found) > 1
    targets = []
    for path, m in found:
        is_cell = isinstance(m, CELL_TYPES)
        if is_cell:
            prefix = path or "cell"
        else:
            prefix = path if several else ""
        targets.append(Target(path=path, module=m, kind=cell_kind(m), is_cell=is_cell, prefix=prefix))
    return targets


def check_eval_mode(target: Target) -> None:
    """Dropout between layers would make recomputation impossible: insist on eval mode."""
    m = target.module
    if not target.is_cell and m.training and m.dropout > 0 and m.num_layers > 1:
        raise RnnvisError(
            f"recurrent module '{target.path or type(m).__name__}' is in training mode with "
            f"dropout={m.dropout}; its states are random and cannot be recorded",
            "call model.eval() before recording",
        )


@contextlib.contextmanager
def capture_calls(targets: list[Target]) -> Iterator[list[Target]]:
    """Record (args, kwargs, output) of every call of every target while the block runs.

    Hooks are always removed on exit, also when the forward pass raises.
    """
    handles = []

    def make_hook(t: Target):
        def hook(module, args, kwargs, output):
            t.calls.append((args, dict(kwargs), output))

        return hook

    try:
        for t in targets:
            t.calls.clear()
            handles.append(t.module.register_forward_hook(make_hook(t), with_kwargs=True))
        yield targets
    finally:
        for h in handles:
            h.remove()


@contextlib.contextmanager
def replace_forward(module: nn.Module, new_forward) -> Iterator[None]:
    """Temporarily make `module(...)` call `new_forward(*args, **kwargs)` instead of its forward.

    Used by corpus recording so that the fused layer runs once: our single pass computes h and
    every gate, and its h becomes the layer's output. Restored on exit, even on error.
    """
    had_own = "forward" in module.__dict__
    old = module.__dict__.get("forward")
    module.forward = new_forward
    try:
        yield
    finally:
        if had_own:
            module.forward = old
        else:
            del module.forward
