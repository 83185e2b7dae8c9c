"""Recording: every hidden state, cell state and gate of any torch RNN/GRU/LSTM model.

- `record(module, *args, **kwargs)` -> (output, Recording) for one forward pass.
- `record_corpus(module, batches, out_path, ...)` -> Store, streaming a corpus to disk with
  per-word and per-unit statistics folded in the same pass.
- `Store` opens a finished recording; `WordUnitStats`, `UnitStats`, `StreamStats` are the
  mergeable statistics.
"""
from rnnvis.recording.corpus import record_corpus
from rnnvis.recording.hooks import find_recurrent
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
    "record",
    "record_corpus",
]
