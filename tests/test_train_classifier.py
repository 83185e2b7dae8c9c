"""Training classifiers: a trivially separable synthetic task, metrics, and the one-class error."""
import random

import pytest

from rnnvis.data.corpus import Corpus, Document
from rnnvis.errors import RnnvisError
from rnnvis.models import TrainConfig, evaluate, load_checkpoint, train

FILLER = ["the", "a", "film", "was", "it", "plot", "and", "of"]


def separable_corpus(n=120, seed=0, classes=("good", "bad", "meh")):
    """Each document holds filler words plus one marker word that names its class."""
    rng = random.Random(seed)
    docs = []
    for i in range(n):
        label = i % len(classes)
        words = [rng.choice(FILLER) for _ in range(rng.randrange(2, 12))]
        words.insert(rng.randrange(len(words) + 1), classes[label])
        docs.append(Document(str(i), " ".join(words), label=label))
    return Corpus("markers", docs, task="classify", label_names=list(classes))


def small(**kw):
    base = dict(name="cls", task="classify", cell="gru", emb=16, hidden=16, dropout=0.0, epochs=8, batch_size=8,
                lr=0.02, log_every=5, device="cpu", num_threads=1, lr_schedule="none", patience=None,
                bidirectional=True, pooling="max", max_len=50)
    base.update(kw)
    return TrainConfig(**base)


def test_classifier_learns_separable_task(ws, catalog):
    res = train(separable_corpus(), small(), ws, catalog, progress=False)
    assert res.metrics["test"]["accuracy"] >= 0.9 and res.metrics["valid"]["macro_f1"] >= 0.9
    series = catalog.metric_series(res.run_id)
    assert {"accuracy", "macro_f1", "loss"} <= set(series["valid"])
    assert {"grad_norm.embedding", "grad_norm.rnn.layer0", "grad_norm.head", "epoch_accuracy"} <= set(series["train"])
    ck = load_checkpoint(res.checkpoint_path)
    m = evaluate(ck.model, ck.tokenizer, separable_corpus(30, seed=5).documents, task="classify")
    assert m["n"] == 30 and len(m["confusion"]) == 3 and sum(map(sum, m["confusion"])) == 30
    assert m["accuracy"] >= 0.9


@pytest.mark.parametrize("cell,pooling,bidir", [("lstm", "last", False), ("rnn", "mean", True)])
def test_other_cells_and_poolings_train(ws, catalog, cell, pooling, bidir):
    res = train(separable_corpus(60, classes=("good", "bad")),
                small(cell=cell, pooling=pooling, bidirectional=bidir, epochs=2, name=f"c-{cell}"),
                ws, catalog, progress=False)
    assert res.model_id and res.epochs_run == 2


def test_one_class_is_an_error(ws, catalog):
    docs = [Document(str(i), "same words here", label=0) for i in range(10)]
    with pytest.raises(RnnvisError, match="single class"):
        train(Corpus("one", docs, task="classify", label_names=["only"]), small(), ws, catalog, progress=False)


def test_rating_labels_are_an_error(ws, catalog):
    docs = [Document(str(i), "some words", label=0.5 + i) for i in range(10)]
    with pytest.raises(RnnvisError, match="not a class index"):
        train(Corpus("ratings", docs, task="classify"), small(), ws, catalog, progress=False)
