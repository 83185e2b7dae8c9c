"""Recording: every hidden state, cell state and gate of any torch RNN/GRU/LSTM model.

- `record(module, *args, **kwargs)` -> (output, Recording) for one forward pass.
- `record_corpus(module, batches, out_path, ...)` -> Store, streaming a corpus to disk with
  per-word and per-unit statistics folded in the same pass.
- `Store` opens a finished recording (per token: h, ids, outputs, keyframes);
  `recompute(module, store, start, stop)` gives c and every gate of any token range exactly.
- `WordUnitStats`, `UnitStats`, `StreamStats` are the mergeable statistics.
"""
from rnnvis.recording.corpus import record_corpus
from rnnvis.recording.hooks import find_recurrent
from rnnvis.recording.recompute import recompute
from rnnvis.recording.record import Recording, record
from rnnvis.recording.stats import StreamStats, UnitStats, WordUnitStats
from rnnvis.recording.store import Store

__all__ = [
    "Recording",
    "Store",
    "StreamStats",
    "UnitStats",
    "WordUnitStats",
    "find_recurrent",
    "recompute",
    "record",
    "record_corpus",
]
