"""How to call a user's own module: a model spec, detected where it can be and asked for where not.

    spec = {"layout": "time",                 # ids (T, B); "batch": (B, T); default: detected
            "extra": {"hidden": "init_hidden"},  # forward's other arguments, built per batch
            "output": 0, "scores": "logprobs"}   # where the logits are in the output, and what they are

`extra` maps a keyword of `forward` to the name of a module method called with the batch size
(`init_hidden(batch)`), to "lengths" (the batch's sequence lengths, (B,)), or to a callable
`f(batch_size)`. `output` is the position of the logits in a tuple output (default: its first
tensor). The logits may be (B, T, V), (T, B, V) or flattened (T·B, V) in either order
(`output.view(-1, V)` of the standard PyTorch word language model; the row order is checked by a
second probe call that changes one sequence only); a classifier's are (B, C).
`scores`: "logits" and "logprobs" are used as they are (softmax and log-softmax give the same
for both), "probs" are logged.

`bind` checks the spec against the module with one tiny call (B=2, T=3, so the two layouts
differ): it fills in what the forward signature and that call show (the layout, from the batch
size the recurrent layer really sees; a hidden argument when the module has `init_hidden`; the
output's shape and scores), and asks with the exact spec keyword for the rest. An exception from
the user's forward is reported as the model's own error, with the call rnnvis made.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import torch

from ..errors import RnnvisError

LAYOUTS = ("batch", "time")
SCORES = ("logits", "logprobs", "probs")
KEYS = ("layout", "extra", "output", "scores")
HIDDEN_NAMES = ("hidden", "hx", "h0", "state", "hidden_state")
LENGTH_NAMES = ("lengths", "lens", "length", "seq_lens", "seq_lengths")
PROBE_B, PROBE_T = 2, 3  # the probe call's batch and time (different, so the layouts differ)


@dataclass(frozen=True)
class ModelSpec:
    layout: str | None = None  # "batch" (B, T) or "time" (T, B); None: detected
    extra: Mapping[str, Any] = field(default_factory=dict)  # keyword -> method name | "lengths" | f(B)
    output: int | None = None  # tuple position of the logits; None: the first tensor
    scores: str | None = None  # "logits" | "logprobs" | "probs"; None: detected


def as_spec(spec) -> ModelSpec:
    """A ModelSpec from None, a ModelSpec or a dict of its fields; clear errors for anything else."""
    if spec is None:
        return ModelSpec()
    if isinstance(spec, ModelSpec):
        s = spec
    elif isinstance(spec, Mapping):
        unknown = [k for k in spec if k not in KEYS]
        if unknown:
            raise RnnvisError(f"unknown model spec key(s) {', '.join(map(repr, unknown))}",
                              f"use only {', '.join(KEYS)}, e.g. spec={{'layout': 'time', "
                              "'extra': {'hidden': 'init_hidden'}}")
        s = ModelSpec(**dict(spec))
    else:
        raise RnnvisError(f"the model spec is a {type(spec).__name__}",
                          "pass a dict such as spec={'layout': 'time', 'extra': {'hidden': 'init_hidden'}}")
    if s.layout is not None and s.layout not in LAYOUTS:
        raise RnnvisError(f"spec layout {s.layout!r} is not one of {LAYOUTS}",
                          "use layout='batch' for ids (batch, time), layout='time' for ids (time, batch)")
    if s.scores is not None and s.scores not in SCORES:
        raise RnnvisError(f"spec scores {s.scores!r} is not one of {SCORES}", "use e.g. scores='logprobs'")
    if s.output is not None and (isinstance(s.output, bool) or not isinstance(s.output, int) or s.output < 0):
        raise RnnvisError(f"spec output {s.output!r} is not a tuple position", "use e.g. output=0")
    if not isinstance(s.extra, Mapping) or not all(isinstance(k, str) for k in s.extra):
        raise RnnvisError("spec extra must map forward's keyword names to how to build them",
                          "e.g. extra={'hidden': 'init_hidden'}")
    for k, v in s.extra.items():
        if not (isinstance(v, str) or callable(v)):
            raise RnnvisError(f"spec extra[{k!r}] is a {type(v).__name__}",
                              "give a method name of the model (called with the batch size), 'lengths', "
                              "or a function of the batch size")
    return s


def _shape(v) -> str:
    if isinstance(v, torch.Tensor):
        return f"{v.dtype}{tuple(v.shape)}".replace("torch.", "")
    if isinstance(v, (tuple, list)):
        return "(" + ", ".join(_shape(x) for x in v) + ")"
    return type(v).__name__


def _first_rnn(module: torch.nn.Module):
    """The first recurrent layer or step cell (models/ stays left of recording/: no find_recurrent here)."""
    kinds = (torch.nn.RNNBase, torch.nn.RNNCellBase)
    return next((m for m in module.modules() if isinstance(m, kinds)), None)


def _seen_batch(rnn, args) -> int | None:
    """The batch size the recurrent layer (or cell, called per step) saw in its input."""
    from torch.nn.utils.rnn import PackedSequence

    x = args[0] if args else None
    if isinstance(x, PackedSequence):
        return int(x.batch_sizes[0])
    if not isinstance(x, torch.Tensor):
        return None
    if isinstance(rnn, torch.nn.RNNCellBase):  # (B, in), or (in,) unbatched
        return int(x.shape[0]) if x.dim() == 2 else 1
    if x.dim() == 3:
        return int(x.shape[0] if getattr(rnn, "batch_first", False) else x.shape[1])
    return 1 if x.dim() == 2 else None


@dataclass
class BoundCall:
    """A spec bound to a module: builds the arguments of a batch and reads its logits, batch-major."""

    name: str  # the module's class, for messages
    layout: str
    extra: dict
    output: int | None
    scores: str
    shape: str  # how the logits are laid out: "bt", "tb", "flat" or "bc" (classifier)
    flat_order: str | None = None  # rows of "flat" logits: "batch" (b·T + t) or "time" (t·B + b); None: layout's

    def args(self, module: torch.nn.Module, ids: torch.Tensor, lengths: torch.Tensor | None = None):
        """(args, kwargs) of forward for ids (B, T) batch-major."""
        B, T = ids.shape
        if lengths is None:
            lengths = torch.full((B,), T, dtype=torch.long)
        kwargs = {}
        for k, how in self.extra.items():
            if how == "lengths":
                kwargs[k] = lengths
            elif isinstance(how, str):
                kwargs[k] = getattr(module, how)(B)
            else:
                kwargs[k] = how(B)
        x = ids.t().contiguous() if self.layout == "time" else ids
        return (x,), kwargs

    def describe(self, args, kwargs) -> str:
        parts = [_shape(a) for a in args] + [f"{k}={_shape(v)}" for k, v in kwargs.items()]
        return f"{self.name}.forward({', '.join(parts)})"

    def user_error(self, e: BaseException, args, kwargs) -> RnnvisError:
        return RnnvisError(f"your model raised {type(e).__name__}: {e} — when rnnvis called "
                           f"{self.describe(args, kwargs)} (layout={self.layout!r})",
                           "this is the model's own error: fix the model, or say how to call it with spec="
                           "{'layout': 'batch'|'time', 'extra': {keyword: 'init_hidden'|'lengths'|f(batch)}}")

    def call(self, module: torch.nn.Module, args, kwargs):
        try:
            return module(*args, **kwargs)
        except RnnvisError:
            raise
        except Exception as e:  # the user's forward failed: their error, with our call
            raise self.user_error(e, args, kwargs) from e

    def __call__(self, module: torch.nn.Module, ids: torch.Tensor, lengths: torch.Tensor | None = None):
        """Logits of ids (B, T), batch-major: (B, T, V) or (B, C)."""
        args, kwargs = self.args(module, ids, lengths)
        return self.logits(self.call(module, args, kwargs), *ids.shape)

    def logits(self, out, B: int, T: int) -> torch.Tensor:
        x = out if self.output is None and isinstance(out, torch.Tensor) else _pick(out, self.output)
        want = {"bt": (B, T), "tb": (T, B), "flat": (B * T,), "bc": (B,)}[self.shape]
        if not isinstance(x, torch.Tensor) or tuple(x.shape[:len(want)]) != want:
            raise RnnvisError(f"{self.name} returned {_shape(x)} where rnnvis expected {want} + (vocab,) "
                              f"(it did so for the first call)", "give spec output= the logits' tuple position")
        if self.shape == "tb":
            x = x.transpose(0, 1)
        elif self.shape == "flat":
            order = self.flat_order or self.layout
            x = x.reshape(T, B, -1).transpose(0, 1) if order == "time" else x.reshape(B, T, -1)
        if self.scores == "probs":
            x = x.clamp_min(torch.finfo(x.dtype).tiny).log()
        return x


def _pick(out, position: int | None):
    """The logits item of an output: the tensor at `position`, or the first tensor."""
    if not isinstance(out, (tuple, list)):
        return out
    if position is not None:
        return out[position] if position < len(out) else None
    return next((x for x in out if isinstance(x, torch.Tensor) and x.is_floating_point()), None)


def _extra(module: torch.nn.Module, spec: ModelSpec, name: str) -> dict:
    """Spec extras, plus the arguments forward requires that the signature shows how to build."""
    extra = dict(spec.extra)
    for k, v in extra.items():
        if isinstance(v, str) and v != "lengths" and not callable(getattr(module, v, None)):
            raise RnnvisError(f"spec extra[{k!r}] = {v!r}, but {name} has no method {v!r}",
                              "name a method of the model called with the batch size, 'lengths', or pass a "
                              "function of the batch size")
    try:
        params = list(inspect.signature(module.forward).parameters.values())
    except (TypeError, ValueError):  # a builtin or C forward: nothing to inspect
        return extra
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    for p in params[1:]:  # the first is the input
        if p.name in extra or p.default is not inspect.Parameter.empty:
            continue
        if p.kind not in positional and p.kind != inspect.Parameter.KEYWORD_ONLY:
            continue
        if p.name in HIDDEN_NAMES and callable(getattr(module, "init_hidden", None)):
            extra[p.name] = "init_hidden"
        elif p.name in LENGTH_NAMES:
            extra[p.name] = "lengths"
        else:
            raise RnnvisError(f"{name}.forward needs the argument {p.name!r}, which rnnvis cannot build by itself",
                              f"say how in the model spec: spec={{'extra': {{{p.name!r}: 'init_hidden'}}}} (a "
                              f"method of the model called with the batch size), {{{p.name!r}: 'lengths'}}, "
                              f"or {{{p.name!r}: lambda batch_size: ...}}")
    return extra


def _scores(x: torch.Tensor) -> str:
    """What a probe's logits look like: probabilities, log-probabilities or logits."""
    x = x.detach().double()
    if bool((x >= 0).all()) and torch.allclose(x.sum(-1), torch.ones(()).double(), atol=1e-4):
        return "probs"
    if torch.allclose(x.logsumexp(-1), torch.zeros(()).double(), atol=1e-4):
        return "logprobs"
    return "logits"


def bind(module: torch.nn.Module, spec=None, kind: str = "lm", vocab: int | None = None) -> BoundCall:
    """The spec completed and checked against `module` by one tiny probe call (see the module doc)."""
    s = as_spec(spec)
    name = type(module).__name__
    extra = _extra(module, s, name)
    rnn = _first_rnn(module)
    # the fused layer's own layout first; a step cell's model (or none found): batch-major first
    first = "time" if isinstance(rnn, torch.nn.RNNBase) and not rnn.batch_first else "batch"
    layouts = [s.layout] if s.layout else [first, "time" if first == "batch" else "batch"]
    ids = torch.full((PROBE_B, PROBE_T), min(1, max(0, (vocab or 2) - 1)), dtype=torch.long)
    errors, out, layout = [], None, None
    for lay in layouts:
        bc = BoundCall(name, lay, extra, s.output, s.scores or "logits", "bt")
        args, kwargs = bc.args(module, ids)
        seen: list = []
        hook = rnn.register_forward_pre_hook(lambda m, a: seen.append(_seen_batch(m, a))) if rnn else None
        try:
            with torch.no_grad():
                out = bc.call(module, args, kwargs)
        except RnnvisError as e:
            errors.append(e)
            continue
        finally:
            if hook is not None:
                hook.remove()
        if seen and seen[0] not in (None, PROBE_B) and not s.layout:
            errors.append(RnnvisError(f"{name} saw a batch of {seen[0]} for {PROBE_B} sequences in layout {lay!r}",
                                      "give the input layout: spec={'layout': 'batch'} or {'layout': 'time'}"))
            continue
        layout = lay
        break
    if layout is None:
        raise errors[0]
    x = _pick(out, s.output)
    B, T = PROBE_B, PROBE_T
    shapes = {"lm": [((B, T), "bt"), ((T, B), "tb"), ((B * T,), "flat")], "classifier": [((B,), "bc")]}[kind]
    ndim = {"bt": 3, "tb": 3, "flat": 2, "bc": 2}
    shape = None
    if isinstance(x, torch.Tensor):
        shape = next((k for w, k in shapes if x.dim() == ndim[k] and tuple(x.shape[:len(w)]) == w), None)
    if shape is None:
        what = "(B, T, V), (T, B, V) or (T·B, V)" if kind == "lm" else "(B, classes)"
        raise RnnvisError(f"{name} returned {_shape(out)} for {bc.describe(args, kwargs)}; rnnvis found no "
                          f"logits {what} with B={B}, T={T} in it",
                          "give the logits' position in a tuple output with spec={'output': 0}, or pass "
                          "kind='classifier' for a classifier")
    bound = BoundCall(name, layout, extra, s.output, s.scores or _scores(x), shape)
    if shape == "flat":
        bound.flat_order = _flat_order(module, bound, ids, x)
    return bound


def _flat_order(module: torch.nn.Module, bound: BoundCall, ids: torch.Tensor, x: torch.Tensor) -> str | None:
    """The row order of flattened logits: change the first token of sequence 0 only and see which
    rows move (sequences are independent): b·T + t rows for batch order, t·B + b for time order.
    None (the input layout's order) when the rows say neither."""
    other = ids.clone()
    other[0, 0] = 0 if int(ids[0, 0]) != 0 else 1
    args, kwargs = bound.args(module, other)
    try:
        with torch.no_grad():
            y = _pick(bound.call(module, args, kwargs), bound.output)
    except RnnvisError:  # e.g. a vocabulary of one id: no other token to try
        return None
    if not isinstance(y, torch.Tensor) or y.shape != x.shape:
        return None
    moved = set(torch.nonzero((y - x).abs().flatten(1).amax(1) > 0).flatten().tolist())
    B, T = ids.shape
    if moved == set(range(T)):
        return "batch"
    if moved == {t * B for t in range(T)}:
        return "time"
    return None


__all__ = ["BoundCall", "ModelSpec", "as_spec", "bind"]
