"""Record every hidden state, cell state and gate of a model that rnnvis did not build."""
import torch
from torch import nn

import rnnvis


class Tagger(nn.Module):
    """Someone else's model: an embedding, a 2-layer bidirectional LSTM and a linear head."""

    def __init__(self, vocab=100, emb=16, hidden=32, tags=5):
        super().__init__()
        self.emb = nn.Embedding(vocab, emb)
        self.encoder = nn.LSTM(emb, hidden, num_layers=2, bidirectional=True, batch_first=True)
        self.head = nn.Linear(2 * hidden, tags)

    def forward(self, ids):
        out, _ = self.encoder(self.emb(ids))
        return self.head(out)


torch.manual_seed(0)
model = Tagger().eval()
ids = torch.randint(0, 100, (3, 12))          # (batch, time)

out, rec = rnnvis.record(model, ids)          # runs model(ids) once, with scoped hooks
print(rec.streams[:6])                        # ['layer0.fwd.h', 'layer0.fwd.c', 'layer0.fwd.gate.i', ...]
forget = rec["layer1.bwd.gate.f"]             # numpy array (batch, time, units)
print(forget.shape, float(forget.mean()))     # (3, 12, 32) ...
assert torch.allclose(out, model(ids))        # the model's own output is unchanged
