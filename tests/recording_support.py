"""Batches as the recording engine takes them, for the recording tests."""
from __future__ import annotations

from typing import Iterator

import torch


def window_batches(docs: list[torch.Tensor], window: int, batch: int) -> Iterator[dict]:
    """Split documents (1-d id tensors) into windows of `window` tokens and group the windows, in
    order, into zero-padded batches: ids (B, T), lengths, doc_ids, start_pos."""
    wins = [(d, doc[s:s + window], s) for d, doc in enumerate(docs) for s in range(0, len(doc), window)]
    for i in range(0, len(wins), batch):
        group = wins[i:i + batch]
        T = max(len(w) for _, w, _ in group)
        ids = torch.zeros(len(group), T, dtype=torch.long)
        for r, (_, w, _) in enumerate(group):
            ids[r, :len(w)] = w
        yield {"ids": ids, "lengths": torch.tensor([len(w) for _, w, _ in group]),
               "doc_ids": torch.tensor([d for d, _, _ in group]), "start_pos": torch.tensor([s for _, _, s in group])}
