"""Which input tokens does a prediction depend on? Gradient saliency (Li, Chen, Hovy, Jurafsky 2016).

For one sentence `ids` (T,) and a scalar score S of the model's output, with e (T, E) the output
of the model's embedding layer:

- gradient: g = ∂S/∂e (T, E), signed; `grad_abs` is Li et al.'s |∂S/∂e| per dimension and
  `grad_norm` (T,) its L2 norm per token.
- gradient × input: g ⊙ e (T, E) and its per-token sum `gxi_token` (T,) — the first-order
  Taylor contribution of each token relative to a zero embedding.
- integrated gradients (Sundararajan et al. 2017), zero-embedding baseline:
  IG = e ⊙ mean_k ∂S/∂e |_(α_k e) with midpoint Riemann steps α_k = (k + ½)/steps, all steps run
  as one batch (or chunks of `batch_size`); `ig_token` (T,) is the per-token sum and
  `ig_delta` = ΣIG − (S(e) − S(0)), the completeness error, which shrinks as `steps` grows.

Scores (`target`):
- classifier (model output (batch, classes)): the logit, or with `score="logprob"` the
  log-softmax, of `target` (a class index; default the predicted class at the real input).
- language model (output (batch, time, vocab), or a tuple whose first item is that): the
  next-token log-probability log p(w_{p+1} | w_{≤p}) at `position` p (0 ≤ p < T − 1), or of token
  `target` at p (then p may be T − 1); with `position=None`, the sum over all positions.
  `score="logit"` uses the raw logit instead.

Mechanics: the embedding module's real output is replaced through a forward hook (removed on
exit, whatever happens) by a leaf tensor that requires grad, in the output's own layout
((batch, T, E), (T, batch, E), before any packing the model does): integrated gradients scale
it along the dimension that grows with the batch of copies. So any model with an `nn.Embedding`
works, whatever its layout, with plain torch autograd — no Captum. The model runs in eval mode (dropout off; its
training flag is restored afterwards) and its parameters are not given gradients. On CUDA,
cuDNN refuses an RNN backward in eval mode ("cudnn RNN backward can only be called in training
mode"), so the forward and backward run under `torch.backends.cudnn.flags(enabled=False)`
(torch's native RNN kernels: slower, same numbers) rather than switching to training mode,
which would turn dropout on.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

import numpy as np
import torch
from torch import nn

from rnnvis.errors import RnnvisError

SCORES = ("logit", "logprob")


@dataclass(frozen=True)
class Saliency:
    tokens_ids: np.ndarray  # (T,) int64 token ids of the sentence
    grad: np.ndarray  # (T, E) signed ∂S/∂e
    grad_norm: np.ndarray  # (T,) L2 norm of the gradient per token
    grad_x_input: np.ndarray  # (T, E) ∂S/∂e ⊙ e
    gxi_token: np.ndarray  # (T,) per-token sum of grad × input
    ig: np.ndarray | None  # (T, E) integrated gradients (zero baseline), None when steps=0
    ig_token: np.ndarray | None  # (T,) per-token sum of ig
    ig_delta: float | None  # ΣIG − (S(x) − S(baseline)): the completeness error
    target: str  # what S is, in words
    score: float  # S(x)

    @property
    def grad_abs(self) -> np.ndarray:
        """(T, E) |∂S/∂e| per dimension, Li et al.'s saliency heat map."""
        return np.abs(self.grad)


def find_embedding(model: nn.Module) -> nn.Embedding:
    """The first `nn.Embedding` submodule of `model` (in `model.modules()` order)."""
    for m in model.modules():
        if isinstance(m, nn.Embedding):
            return m
    raise RnnvisError(f"{type(model).__name__} has no nn.Embedding submodule to take saliency against",
                      "pass the input layer explicitly with embedding=model.<layer>")


class _Replace:
    """While active (a context manager), the first output of `module` in each forward call is
    replaced by `self.make(output)`: a tensor of the output's own shape and layout (batch-major,
    time-major, whatever the model does). `make` is set before each call; the replacement is kept
    in `.value`. Later outputs of the same call (a module used twice) pass unchanged."""

    def __init__(self, module: nn.Module):
        self.module = module
        self.make = None
        self.value: torch.Tensor | None = None
        self.handle = None

    def hook(self, mod, inputs, output):
        if self.value is not None:
            return output
        if not isinstance(output, torch.Tensor) or not output.is_floating_point():
            raise RnnvisError(f"the embedding layer {type(mod).__name__} returned "
                              f"{getattr(output, 'shape', type(output).__name__)}, not a float tensor",
                              "pass the model's input embedding as embedding=")
        self.value = self.make(output.detach())
        return self.value

    def run(self, call, ids: torch.Tensor, make):
        """call(ids) with the embedding output replaced by make(real output); (output, replacement)."""
        self.make, self.value = make, None
        out = call(ids)
        if self.value is None:
            raise RnnvisError(f"the model did not call its embedding layer {type(self.module).__name__}",
                              "pass the layer the model embeds its input with as embedding=")
        return out, self.value

    def __enter__(self) -> "_Replace":
        self.handle = self.module.register_forward_hook(self.hook)
        return self

    def __exit__(self, *exc) -> None:
        self.handle.remove()


def _batch_dim(one: torch.Size, many: torch.Size) -> int | None:
    """The batch dimension of an embedding output: where its shape for b > 1 rows differs from 1 row's."""
    diff = [d for d, (a, b) in enumerate(zip(one, many)) if a != b]
    if len(one) != len(many) or len(diff) > 1:
        raise RnnvisError(f"the embedding output is {tuple(one)} for one sentence but {tuple(many)} for a "
                          "batch of copies", "saliency needs the embedding output to differ only in its batch size")
    return diff[0] if diff else None


def _as_tokens(x: torch.Tensor, T: int) -> torch.Tensor:
    """(T, E) of a one-sentence embedding output in its own layout ((1, T, E), (T, 1, E), ...)."""
    E = x.shape[-1]
    if x.numel() != T * E:
        raise RnnvisError(f"the embedding output {tuple(x.shape)} is not {T} tokens × {E} features",
                          "pass the model's input embedding (token ids -> vectors) as embedding=")
    return x.reshape(T, E)


@contextlib.contextmanager
def _eval_no_cudnn(model: nn.Module, device: torch.device) -> Iterator[None]:
    """Eval mode (dropout off, flag restored) and, on CUDA, cuDNN off so an eval-mode RNN can backprop."""
    was_training = model.training
    model.eval()
    flags = torch.backends.cudnn.flags(enabled=False) if device.type == "cuda" else contextlib.nullcontext()
    try:
        with flags, torch.enable_grad():
            yield
    finally:
        model.train(was_training)


def _as_ids(ids) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(ids) if not isinstance(ids, torch.Tensor) else ids)
    if t.ndim == 2 and t.shape[0] == 1:
        t = t[0]
    if t.ndim != 1 or t.numel() == 0:
        raise RnnvisError(f"saliency takes one sentence of token ids (T,), got shape {tuple(t.shape)}",
                          "pass a 1-D list or array of ids for a single sentence")
    if t.dtype.is_floating_point or t.dtype == torch.bool:
        raise RnnvisError(f"token ids must be integers, got {t.dtype}", "pass vocabulary indices")
    return t.to(torch.int64)


class _Scorer:
    """S(output) per batch row, for one sentence, with the target fixed at the real input."""

    def __init__(self, ids: torch.Tensor, score: str, target: int | None, position: int | None):
        self.ids, self.score, self.target, self.position = ids, score, target, position
        self.kind: str | None = None
        self.describe = ""

    @staticmethod
    def _logits(out) -> torch.Tensor:
        if isinstance(out, (tuple, list)):
            out = out[0]
        if not isinstance(out, torch.Tensor) or out.ndim not in (2, 3):
            raise RnnvisError("the model must return logits (batch, classes) or (batch, time, vocab), "
                              "or a tuple whose first item is one",
                              "pass forward= that returns them (an own model's spec call does: rnnvis.models.spec.bind)")
        return out

    def _transform(self, logits: torch.Tensor) -> torch.Tensor:
        x = logits if logits.dtype == torch.float64 else logits.float()  # half → float32, double kept
        return x.log_softmax(-1) if self.score == "logprob" else x

    def __call__(self, out) -> torch.Tensor:
        """(batch,) scores; fixes the target on the first call."""
        logits = self._logits(out)
        T = self.ids.shape[0]
        if logits.ndim == 2:  # classifier
            if self.position is not None:
                raise RnnvisError("position applies to language models only",
                                  "drop position for a classifier (the score is one class)")
            if self.target is None:
                self.target = int(logits[0].argmax())
                how = "predicted "
            else:
                how = ""
            if not 0 <= self.target < logits.shape[1]:
                raise RnnvisError(f"class {self.target} is out of range for {logits.shape[1]} classes",
                                  f"use a class in 0..{logits.shape[1] - 1}")
            self.kind = "classifier"
            self.describe = f"{self.score} of {how}class {self.target}"
            return self._transform(logits)[:, self.target]
        # language model: logits (batch, T, vocab)
        self.kind = "lm"
        vocab = logits.shape[2]
        lp = self._transform(logits)  # (batch, T, vocab)
        if self.position is None:
            if self.target is not None:
                raise RnnvisError("a target token needs a position", "pass position=p with target=token_id")
            if T < 2:
                raise RnnvisError("a one-token sentence has no next token to score",
                                  "pass position=0 and target=<token id>, or a longer sentence")
            nxt = self.ids[1:].to(lp.device)  # (T-1,)
            self.describe = f"sum over positions of next-token {self.score}"
            return lp[:, :-1, :].gather(2, nxt[None, :, None].expand(lp.shape[0], -1, 1))[..., 0].sum(1)
        p = self.position
        last = T - 1 if self.target is not None else T - 2
        if not 0 <= p <= last:
            raise RnnvisError(f"position {p} is out of range for a {T}-token sentence",
                              f"use a position in 0..{last} (the score is of the token after it)")
        tok = int(self.ids[p + 1]) if self.target is None else int(self.target)
        if not 0 <= tok < vocab:
            raise RnnvisError(f"target token {tok} is out of range for a vocabulary of {vocab}",
                              f"use a token id in 0..{vocab - 1}")
        self.describe = f"next-token {self.score} of token {tok} at position {p}"
        return lp[:, p, tok]


def saliency(model: nn.Module, ids: Sequence[int] | np.ndarray | torch.Tensor, *, target: int | None = None,
             position: int | None = None, score: str = "logit", steps: int = 32,
             embedding: nn.Module | None = None, batch_size: int | None = None,
             forward: Callable[[torch.Tensor], object] | None = None) -> Saliency:
    """Gradient, gradient × input and integrated-gradient saliency of one sentence (see module doc).

    model(ids (batch, T)) must return classifier logits (batch, classes) or LM logits
    (batch, T, vocab) (a tuple is fine: its first item is used). `score` is "logit" or
    "logprob"; the LM default is "logit" too, so pass score="logprob" for log p(next token).
    `steps=0` skips integrated gradients. `batch_size` caps the IG rows per forward pass.
    `forward(ids (batch, T))`, when given, calls the model instead (e.g. an own model's spec: a
    time-major layout, a hidden state built per batch) and returns what `model` would.
    """
    if score not in SCORES:
        raise RnnvisError(f"unknown score {score!r}", f"use one of {', '.join(SCORES)}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise RnnvisError(f"steps={steps!r} must be a whole number ≥ 0", "use e.g. 32 (0 skips integrated gradients)")
    if batch_size is not None and (not isinstance(batch_size, int) or batch_size < 1):
        raise RnnvisError(f"batch_size={batch_size!r} must be a positive whole number", "use e.g. 64 or None")
    ids_t = _as_ids(ids)
    emb_mod = embedding if embedding is not None else find_embedding(model)
    if not isinstance(emb_mod, nn.Module):
        raise RnnvisError("embedding must be a torch module of the model", "pass e.g. embedding=model.embedding")
    params = list(model.parameters())
    device = params[0].device if params else torch.device("cpu")
    ids_t = ids_t.to(device)
    T = ids_t.shape[0]
    call = forward if forward is not None else model
    scorer = _Scorer(ids_t, score, target, position)

    with _eval_no_cudnn(model, device), _Replace(emb_mod) as rep:
        # gradient at the input: the embedding output the model really produced, as a leaf
        out, x = rep.run(call, ids_t[None], lambda o: o.clone().requires_grad_(True))
        s = scorer(out)  # (1,)
        (g,) = torch.autograd.grad(s.sum(), x)
        one = x.shape  # the real embedding output's shape, in the model's layout
        e = _as_tokens(x.detach(), T)  # (T, E)
        score_x = float(s.detach()[0])
        grad = _as_tokens(g.detach(), T).double()  # (T, E)
        ig = ig_delta = None
        if steps > 0:
            alphas = (torch.arange(steps, dtype=torch.float64, device=device) + 0.5) / steps  # (steps,)
            chunk = batch_size or steps
            total = torch.zeros_like(grad)
            for start in range(0, steps, chunk):
                a = alphas[start:start + chunk]  # (b,)

                def scaled(o, a=a):  # o: b copies of the embedding, scaled α_k along the batch dim
                    bd = _batch_dim(one, o.shape)
                    shape = [1] * o.dim()
                    if bd is not None:
                        shape[bd] = len(a)
                    return (o * a.to(o.dtype).reshape(shape)).requires_grad_(True)
                out, xs = rep.run(call, ids_t[None].expand(len(a), -1), scaled)
                sb = scorer(out)  # (b,)
                (gb,) = torch.autograd.grad(sb.sum(), xs)
                bd = _batch_dim(one, gb.shape)
                gsum = gb.detach().double().sum(bd, keepdim=True) if bd is not None else gb.detach().double()
                total += _as_tokens(gsum, T)
            with torch.no_grad():
                out, _ = rep.run(call, ids_t[None], torch.zeros_like)
                score_0 = float(scorer(out)[0])
            ig = (total / steps) * e.double()  # (T, E)
            ig_delta = float(ig.sum()) - (score_x - score_0)

    e_np = e.double().cpu().numpy()
    grad_np = grad.cpu().numpy()
    gxi = grad_np * e_np
    ig_np = ig.cpu().numpy() if ig is not None else None
    return Saliency(
        tokens_ids=ids_t.cpu().numpy(),
        grad=grad_np,
        grad_norm=np.linalg.norm(grad_np, axis=1),
        grad_x_input=gxi,
        gxi_token=gxi.sum(1),
        ig=ig_np,
        ig_token=ig_np.sum(1) if ig_np is not None else None,
        ig_delta=ig_delta,
        target=scorer.describe,
        score=score_x,
    )

