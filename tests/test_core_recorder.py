"""Recording a catalogued model: the exact split it was trained on, cached by content key."""
import numpy as np
import pytest

from rnnvis.data import load_user_data
from rnnvis.errors import RnnvisError
from rnnvis.models import TrainConfig, train
from rnnvis.recorder import record_model

TEXT = [
    "the cat sat on the mat .", "a dog ran in the park .", "the bird sang a song .",
    "my friend read the book .", "the sun is hot today .", "we ate the cake at noon .",
]


@pytest.fixture
def tiny_lm(ws, catalog, tmp_path):
    path = tmp_path / "lines.txt"
    path.write_text("\n".join(TEXT * 6))
    corpus = load_user_data(path, per_line=True, name="lines")
    cfg = TrainConfig(name="tiny", task="lm", level="word", cell="gru", emb=8, hidden=12, epochs=1,
                      batch_size=4, bptt=8, device="cpu", log_every=5)
    train(corpus, cfg, ws, catalog, progress=False)
    return path, corpus


def test_record_model_uses_the_training_split_and_caches(ws, catalog, tiny_lm):
    path, corpus = tiny_lm
    store = record_model("tiny", ws, catalog, data=str(path), data_options={"per_line": True},
                         split="test", progress=False)
    splits = corpus.split(seed=0)
    expected_tokens = sum(len(corpus.documents[i].words()) + 1 for i in splits["test"])  # + <eos>
    assert store.n_tokens == expected_tokens
    assert set(np.unique(store.doc_ids)) == set(splits["test"])
    assert store.streams == ["layer0.fwd.h"]  # per token by default; the gates are recomputed
    assert {"layer0.fwd.h", "layer0.fwd.gate.r", "layer0.fwd.gate.z", "layer0.fwd.gate.n"} == set(store.all_streams)
    assert len(catalog.recordings()) == 1
    again = record_model("tiny", ws, catalog, data=str(path), data_options={"per_line": True},
                         split="test", progress=False)
    assert again.path == store.path and len(catalog.recordings()) == 1


def test_bad_max_tokens_is_refused(ws, catalog, tiny_lm):
    with pytest.raises(RnnvisError, match="must be positive"):
        record_model("tiny", ws, catalog, max_tokens=0, progress=False)


def test_record_model_split_all_covers_every_document(ws, catalog, tiny_lm):
    path, corpus = tiny_lm
    store = record_model("tiny", ws, catalog, data=str(path), data_options={"per_line": True},
                         split="all", progress=False, store_streams=("*",))
    assert set(np.unique(store.doc_ids)) == set(range(len(corpus.documents)))
    assert sorted(store.streams) == sorted(store.all_streams)
    with pytest.raises(RnnvisError, match="unknown split"):
        record_model("tiny", ws, catalog, split="everything", progress=False)
