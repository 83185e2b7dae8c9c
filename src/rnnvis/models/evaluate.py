"""Metrics of a model on a list of documents: what `train` logs and a user compares.

Language models: loss (nats per token), ppl, bpc (character level: loss / ln 2),
top1 / top5 next-token accuracy, tokens. Every document is read from the zero
state with an <eos> start symbol, so every token and the closing <eos> is scored
— the same targets as the n-gram baseline. Classifiers: accuracy, macro_f1,
confusion matrix, n.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..analysis.metrics import confusion_matrix, f1_scores
from ..data.corpus import Document
from ..data.tokenize import Tokenizer
from ..errors import RnnvisError
from .batching import IGNORE_INDEX, classify_batches, doc_labels, lm_windows
from .zoo import resolve_device


def lm_metrics(loss_sum: float, tokens: int, level: str, top1: int = 0, top5: int = 0) -> dict:
    """Derived LM metrics from a summed loss (nats) over `tokens` targets."""
    loss = loss_sum / max(tokens, 1)
    out = {"loss": loss, "ppl": math.exp(min(loss, 700.0)), "tokens": int(tokens)}
    if level == "char":
        out["bpc"] = loss / math.log(2)
    if tokens:
        out["top1"], out["top5"] = top1 / tokens, top5 / tokens
    return out


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> dict:
    """accuracy, macro_f1 (over classes present in truth or prediction), confusion[true][pred], n."""
    conf = confusion_matrix(y_true, y_pred, num_classes)  # (classes, classes)
    _, _, f1 = f1_scores(conf)
    present = (conf.sum(0) + conf.sum(1)) > 0
    n = int(conf.sum())
    return {
        "accuracy": float(np.trace(conf) / n) if n else 0.0,
        "macro_f1": float(f1[present].mean()) if present.any() else 0.0,
        "confusion": conf.tolist(),
        "n": n,
    }


@torch.no_grad()
def evaluate(model: nn.Module, tokenizer: Tokenizer, documents: Sequence[Document], task: str = "lm",
             level: str = "word", device: str | torch.device = "cpu", batch_size: int = 32,
             window: int = 256, max_len: int = 200, num_classes: int | None = None) -> dict:
    """Metrics of `model` on `documents` (see the module docstring). The model is left in eval mode."""
    dev = resolve_device(device)
    model.eval()
    if task == "lm":
        loss_sum, tokens, top1, top5 = 0.0, 0, 0, 0
        for b in lm_windows(tokenizer, documents, window=window, batch_size=batch_size, prepend_eos=True,
                            sort_by_length=True):
            ids, targets = b["ids"].to(dev), b["targets"].to(dev)
            logits, _ = model(ids)  # (batch, time, vocab)
            flat = logits.reshape(-1, logits.shape[-1])
            tgt = targets.reshape(-1)
            loss_sum += float(F.cross_entropy(flat.float(), tgt, ignore_index=IGNORE_INDEX, reduction="sum"))
            keep = tgt != IGNORE_INDEX
            k = min(5, flat.shape[-1])
            top = flat[keep].topk(k, dim=-1).indices  # (targets, k)
            hit = top == tgt[keep, None]
            top1 += int(hit[:, 0].sum())
            top5 += int(hit.any(-1).sum())
            tokens += int(keep.sum())
        return lm_metrics(loss_sum, tokens, level, top1, top5)
    if task in ("classify", "classifier"):
        if num_classes is None:
            num_classes = int(getattr(model, "config", {}).get("num_classes") or 0)
        if not num_classes:
            raise RnnvisError("the number of classes is unknown", "pass num_classes=")
        if not documents:
            return classification_metrics(np.zeros(0), np.zeros(0), num_classes) | {"loss": float("nan")}
        trues, preds, loss_sum = [], [], 0.0
        for b in classify_batches(tokenizer, documents, batch_size=batch_size, max_len=max_len):
            logits = model(b["ids"].to(dev), b["lengths"])  # (batch, classes)
            labels = b["labels"].to(dev)
            loss_sum += float(F.cross_entropy(logits.float(), labels, reduction="sum"))
            trues.append(b["labels"].numpy())
            preds.append(logits.argmax(-1).cpu().numpy())
        y_true, y_pred = np.concatenate(trues), np.concatenate(preds)
        out = classification_metrics(y_true, y_pred, num_classes)
        out["loss"] = loss_sum / max(len(y_true), 1)
        return out
    raise RnnvisError(f"unknown task {task!r}", "use lm or classify")


__all__ = ["evaluate", "lm_metrics", "classification_metrics"]
