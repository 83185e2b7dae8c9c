"""Training language models and classifiers, with metric logging, checkpoints and clean stops.

`train(corpus, config, ws, catalog)` fits the tokenizer on the training split,
trains with Adam or SGD (gradient clipping, LR schedule, early stopping on the
validation loss), logs step and epoch metrics into the catalog, writes a
checkpoint per epoch and the best one, and returns a `TrainResult`. Ctrl-C stops
cleanly: the last good checkpoint stays and the run is marked "stopped".
"""
from __future__ import annotations

import dataclasses
import math
import random
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..catalog import Catalog
from ..data.corpus import Corpus, check_split_fractions
from ..data.tokenize import make_tokenizer
from ..errors import RnnvisError
from ..progress import progress_bar
from ..workspace import Workspace
from .batching import batchify, bptt_windows, classify_batches, doc_labels, lm_stream, num_bptt_windows, take_tokens
from .checkpoint import load_checkpoint, save_checkpoint
from .evaluate import evaluate, lm_metrics
from .options import CHOICES, FLAGS, LIMITS, OPTIMIZERS, SCHEDULES  # noqa: F401 - re-exported
from .zoo import build_model, resolve_device


@dataclass
class TrainConfig:
    """Everything that defines a training run; JSON-able (`to_json` / `from_json`)."""

    name: str = "model"
    task: str = "lm"                 # lm | classify
    level: str = "word"              # word | char
    cell: str = "lstm"               # rnn | gru | lstm
    layers: int = 1
    emb: int = 128
    hidden: int = 256
    dropout: float = 0.2
    bidirectional: bool = False      # classifiers only
    pooling: str = "last"            # classifiers: last | mean | max
    tie_weights: bool = False        # LMs with emb == hidden
    max_vocab: int | None = 10000
    min_count: int = 1
    lower: bool = True
    optimizer: str = "adam"          # adam | sgd
    lr: float = 2e-3
    weight_decay: float = 0.0
    lr_schedule: str = "plateau"     # none | plateau | cosine | step
    lr_gamma: float = 0.5            # factor of the plateau and step schedules
    lr_step_size: int = 1            # epochs between decays of the step schedule
    clip: float | None = 1.0         # max global grad norm; None or 0 → no clipping
    epochs: int = 10
    batch_size: int = 32
    bptt: int = 35
    max_len: int = 200               # classifiers: tokens kept per document
    eval_window: int = 256           # LMs: evaluation window (tokens)
    max_train_tokens: int | None = None
    time_budget_s: float | None = None
    patience: int | None = 3         # epochs without validation improvement before stopping
    seed: int = 0
    split_seed: int = 0
    split_fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)
    device: str = "auto"             # cpu | cuda | auto
    log_every: int = 50
    num_threads: int | None = None
    tags: dict[str, Any] = field(default_factory=dict)  # free-form labels, e.g. the demo's key

    def to_json(self) -> dict:
        d = dataclasses.asdict(self)
        d["split_fractions"] = list(self.split_fractions)
        return d

    @classmethod
    def from_json(cls, obj: dict) -> "TrainConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(obj) - known
        if unknown:
            raise RnnvisError(f"unknown training option(s) {', '.join(sorted(unknown))}",
                              f"known options: {', '.join(sorted(known))}")
        obj = dict(obj)
        if "split_fractions" in obj:
            obj["split_fractions"] = tuple(obj["split_fractions"])
        return cls(**obj)

    def validate(self) -> None:
        """Refuse any option outside `LIMITS` (or an unknown choice) with a message naming the option, its
        value and the allowed range. The one check of training options: the CLI, POST /api/train and
        `rnnvis.train` all go through it, before anything is loaded or written."""
        def bad(what: str, fix: str) -> None:
            raise RnnvisError(what, fix)

        for key, (label, choices) in CHOICES.items():
            if getattr(self, key) not in choices:
                bad(f"unknown {label} {getattr(self, key)!r}", f"use {', '.join(choices[:-1])} or {choices[-1]}")
        for key, limit in LIMITS.items():
            limit.check(key, getattr(self, key))
        for key in FLAGS:
            if not isinstance(getattr(self, key), bool):
                bad(f"training option {key}={getattr(self, key)!r} must be true or false", f"set {key} to True or False")
        check_split_fractions(self.split_fractions)
        name = self.name
        if not isinstance(name, str) or not name.strip() or name in (".", "..") or "/" in name or "\\" in name \
                or len(name) > 100 or not name.isprintable():
            bad(f"model name {name!r} cannot be used as a folder name",
                "use 1-100 letters, digits, - and _ (e.g. --name my-model)")


@dataclass
class TrainResult:
    run_id: int
    model_id: str | None           # the best checkpoint's id (None if stopped before the first epoch ended)
    checkpoint_path: str | None
    metrics: dict = field(default_factory=dict)   # {"valid": {...}, "test": {...}} of the best model
    epochs_run: int = 0
    stopped_early: bool = False
    interrupted: bool = False


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2 ** 32))
    torch.manual_seed(seed)


def grad_norms(model: nn.Module) -> dict[str, float]:
    """L2 norm of the gradient per top-level part and per recurrent layer.

    Keys: `grad_norm.<module>` for each top-level module (embedding, decoder,
    head) and `grad_norm.rnn.layer<k>` for each recurrent layer (both directions).
    """
    sq: dict[str, float] = {}
    for name, p in model.named_parameters():
        if p.grad is None:
            continue
        top, _, rest = name.partition(".")
        if top == "rnn":
            layer = rest.split("_l", 1)[1].split("_")[0] if "_l" in rest else "0"
            key = f"grad_norm.rnn.layer{layer}"
        else:
            key = f"grad_norm.{top}"
        sq[key] = sq.get(key, 0.0) + float(p.grad.detach().float().pow(2).sum())
    return {k: math.sqrt(v) for k, v in sq.items()}


def _detach(state):
    if state is None:
        return None
    if isinstance(state, tuple):
        return tuple(s.detach() for s in state)
    return state.detach()


def _scheduler(opt: torch.optim.Optimizer, cfg: TrainConfig):
    if cfg.lr_schedule == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="min", factor=cfg.lr_gamma, patience=0)
    if cfg.lr_schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs)
    if cfg.lr_schedule == "step":
        return torch.optim.lr_scheduler.StepLR(opt, step_size=cfg.lr_step_size, gamma=cfg.lr_gamma)
    return None


def _call(callbacks: Sequence[Any], hook: str, info: dict) -> None:
    for cb in callbacks:
        fn = getattr(cb, hook, None)
        if fn is not None:
            fn(info)


class _Trainer:
    """One training run; `train()` below is its public face."""

    def __init__(self, corpus: Corpus, cfg: TrainConfig, ws: Workspace, catalog: Catalog, progress: bool,
                 callbacks: Sequence[Any]):
        self.corpus, self.cfg, self.ws, self.catalog = corpus, cfg, ws, catalog
        self.progress, self.callbacks = progress, tuple(callbacks)
        self.device = resolve_device(cfg.device)
        splits = corpus.split(cfg.split_seed, cfg.split_fractions)
        self.splits = splits
        self.docs = {s: corpus.subset(splits[s]) for s in ("train", "valid", "test")}
        if not self.docs["train"]:
            raise RnnvisError(f"the training split of {corpus.name!r} is empty",
                              "add documents or give the training split a larger fraction")
        self.tokenizer = make_tokenizer(cfg.level, lower=cfg.lower, max_size=cfg.max_vocab, min_count=cfg.min_count)
        self.tokenizer.fit(self.docs["train"])
        self.num_classes = None
        if cfg.task == "classify":
            if corpus.task != "classify":
                raise RnnvisError(f"the corpus {corpus.name!r} has no class labels (its task is {corpus.task!r})",
                                  "train a language model (--task lm) or choose a labelled data set")
            labels = doc_labels(self.docs["train"])
            all_labels = doc_labels(corpus.documents)
            self.num_classes = max(len(corpus.label_names or []), int(all_labels.max()) + 1)
            if len(np.unique(labels)) < 2:
                raise RnnvisError(
                    f"the training split of {corpus.name!r} has a single class ({int(labels[0])})",
                    "a classifier needs at least two classes: check the label column")
        self.model_config = {
            "kind": "lm" if cfg.task == "lm" else "classifier", "cell": cfg.cell,
            "vocab_size": len(self.tokenizer.vocab), "emb": cfg.emb, "hidden": cfg.hidden, "layers": cfg.layers,
            "dropout": cfg.dropout, "bidirectional": cfg.bidirectional and cfg.task != "lm", "pooling": cfg.pooling,
            "num_classes": self.num_classes, "tie_weights": cfg.tie_weights and cfg.task == "lm",
        }
        seed_everything(cfg.seed)
        self.model = build_model(self.model_config).to(self.device)
        if cfg.optimizer == "adam":
            self.opt = torch.optim.Adam(self.model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        else:
            self.opt = torch.optim.SGD(self.model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.sched = _scheduler(self.opt, cfg)
        self.step = 0
        self.t0 = time.monotonic()
        self.out_of_time = False
        if cfg.task == "lm":
            self.train_stream = lm_stream(self.tokenizer, self.docs["train"])

    # -- one epoch ------------------------------------------------------------------
    def _batches(self, epoch: int):
        """(n_steps, iterator of (ids, targets-or-labels, lengths-or-None))."""
        cfg = self.cfg
        if cfg.task == "lm":
            data = batchify(take_tokens(self.train_stream, cfg.max_train_tokens, epoch), cfg.batch_size)
            return num_bptt_windows(data, cfg.bptt), ((x, y, None) for x, y in bptt_windows(data, cfg.bptt))
        docs = self.docs["train"]
        batches = list(classify_batches(self.tokenizer, docs, cfg.batch_size, cfg.max_len, shuffle=True,
                                        seed=cfg.seed * 1000 + epoch))
        if cfg.max_train_tokens:
            kept, total = [], 0
            for b in batches:
                if total >= cfg.max_train_tokens:
                    break
                kept.append(b)
                total += int(b["lengths"].sum())
            batches = kept
        return len(batches), ((b["ids"], b["labels"], b["lengths"]) for b in batches)

    def _log_name(self) -> str:
        return "bpc" if self.cfg.level == "char" and self.cfg.task == "lm" else "ppl"

    def _derived(self, loss: float) -> dict:
        if self.cfg.task != "lm":
            return {}
        return {"bpc": loss / math.log(2)} if self.cfg.level == "char" else {"ppl": math.exp(min(loss, 700.0))}

    def train_epoch(self, epoch: int) -> dict:
        cfg, model, dev = self.cfg, self.model, self.device
        model.train()
        n_steps, batches = self._batches(epoch)
        state = None
        ep_loss, ep_count, ep_correct, ep_tokens = 0.0, 0, 0, 0
        win_loss, win_count, win_tokens, win_t = 0.0, 0, 0, time.monotonic()
        ep_t = time.monotonic()
        bar = progress_bar(total=n_steps, desc=f"{cfg.name} epoch {epoch}", disable=not self.progress,
                           leave=False, unit="step")
        done = 0  # steps of this epoch (a disabled progress bar does not count them)
        try:
            for ids, target, lengths in batches:
                done += 1
                ids, target = ids.to(dev), target.to(dev)
                self.opt.zero_grad(set_to_none=True)
                if cfg.task == "lm":
                    logits, state = model(ids, _detach(state))  # (batch, time, vocab)
                    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1))
                    count = target.numel()
                    tokens = count
                else:
                    logits = model(ids, lengths)  # (batch, classes)
                    loss = F.cross_entropy(logits, target)
                    count = target.numel()
                    tokens = int(lengths.sum())
                    ep_correct += int((logits.argmax(-1) == target).sum())
                loss.backward()
                self.step += 1
                log_now = self.step % cfg.log_every == 0
                parts = grad_norms(model) if log_now else {}
                if cfg.clip:
                    total = float(torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip))
                else:
                    total = math.sqrt(sum(float(p.grad.detach().float().pow(2).sum())
                                          for p in model.parameters() if p.grad is not None))
                self.opt.step()
                lv = float(loss.detach())
                ep_loss += lv * count
                ep_count += count
                ep_tokens += tokens
                win_loss += lv * count
                win_count += count
                win_tokens += tokens
                now = time.monotonic()
                tok_s = ep_tokens / max(now - ep_t, 1e-9)
                bar.update(1)
                bar.set_postfix(loss=f"{lv:.3f}", tok_s=f"{tok_s:,.0f}", refresh=False)  # redrawn at mininterval
                info = {"run_id": self.run_id, "step": self.step, "epoch": epoch, "loss": lv,
                        "lr": self.opt.param_groups[0]["lr"], "grad_norm": total, "tokens_per_s": tok_s,
                        "epoch_steps": n_steps, "epochs": cfg.epochs}
                if log_now:
                    avg = win_loss / max(win_count, 1)
                    values = {"loss": avg, **self._derived(avg), "lr": info["lr"], "grad_norm": total, **parts,
                              "tokens_per_s": win_tokens / max(now - win_t, 1e-9)}
                    self.catalog.log_metrics(self.run_id, self.step, "train", values,
                                             epoch=epoch - 1 + done / max(n_steps, 1))
                    info["logged"] = values
                    win_loss, win_count, win_tokens, win_t = 0.0, 0, 0, now
                _call(self.callbacks, "on_step", info)
                if cfg.time_budget_s and now - self.t0 > cfg.time_budget_s:
                    self.out_of_time = True
                    break
        finally:
            bar.close()
        avg = ep_loss / max(ep_count, 1)
        out = {"epoch_loss": avg, "epoch_tokens_per_s": ep_tokens / max(time.monotonic() - ep_t, 1e-9),
               "epoch_tokens": ep_tokens}
        out.update({f"epoch_{k}": v for k, v in self._derived(avg).items()})
        if cfg.task != "lm":
            out["epoch_accuracy"] = ep_correct / max(ep_count, 1)
        return out

    def evaluate(self, split: str) -> dict:
        cfg = self.cfg
        return evaluate(self.model, self.tokenizer, self.docs[split], task=cfg.task, level=cfg.level,
                        device=self.device, batch_size=cfg.batch_size, window=cfg.eval_window, max_len=cfg.max_len,
                        num_classes=self.num_classes)

    # -- checkpoints ------------------------------------------------------------------
    def _ckpt_config(self, epoch: int, metrics: dict) -> dict:
        return {"model": self.model.config, "train": self.cfg.to_json(), "dataset": self.corpus.name,
                "corpus_fingerprint": self.corpus.fingerprint(), "corpus_info": self.corpus.info,
                "split": {"seed": self.splits.seed, "fractions": list(self.splits.fractions)},
                "task": self.cfg.task, "level": self.cfg.level, "run_id": self.run_id, "epoch": epoch,
                "metrics": metrics}

    def _register(self, model_id: str, path, epoch: int, tag: str, metrics: dict) -> None:
        self.catalog.put_model(model_id, self.cfg.name, path, self.model_config["kind"], self.model.config,
                               run_id=self.run_id, epoch=epoch, tag=tag, metrics=metrics)

    # -- the loop ---------------------------------------------------------------------
    def run(self) -> TrainResult:
        cfg = self.cfg
        run_config = {**cfg.to_json(), "dataset": self.corpus.name, "model": self.model_config}
        self.run_id = self.catalog.start_run(cfg.name, run_config)
        folder = self.ws.checkpoints_dir / cfg.name
        best = {"loss": math.inf, "id": None, "path": None, "epoch": None, "epoch_path": None, "metrics": {}}
        result = TrainResult(self.run_id, None, None)
        bad_epochs = 0
        try:
            for epoch in range(1, cfg.epochs + 1):
                train_m = self.train_epoch(epoch)
                has_valid = bool(self.docs["valid"])
                valid_m = self.evaluate("valid") if has_valid else {}
                self.catalog.log_metrics(self.run_id, self.step, "train", train_m, epoch=epoch)
                if valid_m:
                    self.catalog.log_metrics(self.run_id, self.step, "valid",
                                             {k: v for k, v in valid_m.items() if k != "confusion"}, epoch=epoch)
                sel = valid_m.get("loss", train_m["epoch_loss"])
                metrics = {"valid": valid_m, "train": train_m}
                ckpt_path = folder / f"epoch-{epoch}"
                model_id = save_checkpoint(ckpt_path, self.model, self.tokenizer, self._ckpt_config(epoch, metrics))
                if model_id != best["id"]:  # unchanged weights (lr ~ 0) keep their "best" row
                    self._register(model_id, ckpt_path, epoch, "epoch", metrics)
                improved = sel < best["loss"] - 1e-9
                if improved:
                    if best["id"] is not None and best["id"] != model_id:  # the old best becomes a plain epoch row
                        self._register(best["id"], best["epoch_path"], best["epoch"], "epoch", best["metrics"])
                    best_path = folder / "best"
                    save_checkpoint(best_path, self.model, self.tokenizer, self._ckpt_config(epoch, metrics))
                    self._register(model_id, best_path, epoch, "best", metrics)
                    best.update(loss=sel, id=model_id, path=best_path, epoch=epoch, epoch_path=ckpt_path,
                                metrics=metrics)
                    bad_epochs = 0
                else:
                    bad_epochs += 1
                if best["id"] is not None:
                    result.model_id, result.checkpoint_path = best["id"], str(best["path"])
                result.epochs_run = epoch
                if self.sched is not None:
                    if cfg.lr_schedule == "plateau":
                        self.sched.step(sel)
                    else:
                        self.sched.step()
                _call(self.callbacks, "on_epoch", {"run_id": self.run_id, "epoch": epoch, "step": self.step,
                                                   "train": train_m, "valid": valid_m, "improved": improved,
                                                   "model_id": model_id, "best_model_id": best["id"]})
                if cfg.patience is not None and bad_epochs >= cfg.patience:
                    result.stopped_early = True
                    break
                if self.out_of_time:
                    break
            result.metrics = self._final_metrics(best)
        except KeyboardInterrupt:
            result.interrupted = True
            self.catalog.end_run(self.run_id, "stopped")
            if best["id"] is not None:
                result.metrics = {"valid": best["metrics"].get("valid", {})}
            return result
        except BaseException:
            self.catalog.end_run(self.run_id, "failed")
            raise
        self.catalog.end_run(self.run_id, "finished")
        return result

    def _final_metrics(self, best: dict) -> dict:
        """Valid and test metrics of the best checkpoint; stored on its catalog row."""
        if best["id"] is None:
            raise RnnvisError("training diverged: the validation loss was never a finite number",
                              "lower the learning rate (--lr) or turn on gradient clipping (--clip 1.0)")
        ckpt = load_checkpoint(best["path"], device=self.device)
        self.model = ckpt.model
        metrics = {"valid": best["metrics"].get("valid", {})}
        if self.docs["test"]:
            metrics["test"] = self.evaluate("test")
            self.catalog.log_metrics(self.run_id, self.step, "test",
                                     {k: v for k, v in metrics["test"].items() if k != "confusion"},
                                     epoch=best["epoch"])
        self.catalog.update_model_metrics(best["id"], {**best["metrics"], **metrics})
        return metrics


def train(corpus: Corpus, config: TrainConfig | dict, ws: Workspace, catalog: Catalog, progress: bool = True,
          callbacks: Sequence[Any] = ()) -> TrainResult:
    """Train a model on `corpus` as `config` says; see the module docstring."""
    cfg = config if isinstance(config, TrainConfig) else TrainConfig.from_json(config)
    cfg.validate()
    old_threads = torch.get_num_threads()
    if cfg.num_threads:
        torch.set_num_threads(int(cfg.num_threads))
    try:
        return _Trainer(corpus, cfg, ws, catalog, progress, callbacks).run()
    finally:
        if cfg.num_threads:
            torch.set_num_threads(old_threads)
