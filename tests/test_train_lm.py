"""Training language models: learning, catalog logging, checkpoints, early stopping, Ctrl-C, determinism."""
import math
import random

import pytest
import torch

from rnnvis.data.corpus import Corpus, Document
from rnnvis.errors import RnnvisError
from rnnvis.models import TrainConfig, evaluate, load_checkpoint, train

WORDS = [f"w{i}" for i in range(10)]


def cyclic_corpus(n_docs=40, seed=0, level="word"):
    """Synthetic grammar: each document walks the cycle w0 → w1 → … → w9 → w0 from a random start."""
    rng = random.Random(seed)
    docs = []
    for i in range(n_docs):
        start, n = rng.randrange(10), rng.randrange(15, 30)
        docs.append(Document(str(i), " ".join(WORDS[(start + k) % 10] for k in range(n))))
    return Corpus("cyclic", docs, level=level)


def small(**kw):
    base = dict(name="tiny", cell="lstm", emb=16, hidden=24, dropout=0.0, epochs=3, batch_size=4, bptt=10,
                lr=0.02, log_every=5, device="cpu", num_threads=1, lr_schedule="none", patience=None)
    base.update(kw)
    return TrainConfig(**base)


class StepRecorder:
    def __init__(self):
        self.steps, self.epochs = [], []

    def on_step(self, info):
        self.steps.append(info)

    def on_epoch(self, info):
        self.epochs.append(info)


def test_tiny_lm_learns_and_logs(ws, catalog):
    cb = StepRecorder()
    res = train(cyclic_corpus(), small(epochs=4), ws, catalog, progress=False, callbacks=[cb])
    assert not res.interrupted and res.epochs_run == 4 and res.model_id
    vocab = 3 + 10
    # uniform over the vocabulary is ln(13) ≈ 2.56 nats; the cycle is nearly deterministic
    assert res.metrics["valid"]["loss"] < 0.35 * math.log(vocab)
    assert res.metrics["test"]["top1"] > 0.8 and res.metrics["test"]["ppl"] < 2.5
    series = catalog.metric_series(res.run_id)
    train_s, valid_s = series["train"], series["valid"]
    n_steps = cb.steps[-1]["step"]
    assert n_steps >= 60
    assert len(train_s["loss"]) == n_steps // 5  # one row per log_every steps
    for key in ("lr", "ppl", "grad_norm", "grad_norm.embedding", "grad_norm.rnn.layer0", "grad_norm.decoder",
                "tokens_per_s"):
        assert key in train_s, key
    assert [e for _, e, _ in valid_s["loss"]] == [1, 2, 3, 4]  # one row per epoch
    for key in ("ppl", "top1", "top5"):
        assert len(valid_s[key]) == 4
    assert len(train_s["epoch_loss"]) == 4 and "test" in series
    assert len(cb.epochs) == 4 and len(cb.steps) == n_steps
    run = catalog.get_run(res.run_id)
    assert run["status"] == "finished"
    # checkpoints per epoch and the best, registered with their tags
    rows = catalog.models("tiny")
    assert sorted(r["tag"] for r in rows).count("best") == 1
    best = catalog.find_model("tiny")
    assert best["id"] == res.model_id and best["path"] == res.checkpoint_path
    for k in range(1, 5):
        assert (ws.checkpoints_dir / "tiny" / f"epoch-{k}" / "model.safetensors").is_file()
    ck = load_checkpoint(res.checkpoint_path)
    assert ck.model_id == res.model_id and ck.config["dataset"] == "cyclic"
    again = evaluate(ck.model, ck.tokenizer, cyclic_corpus().subset(range(3)), task="lm", level="word")
    assert set(again) >= {"loss", "ppl", "top1", "top5", "tokens"}


def test_multilayer_grad_norm_keys_and_char_bpc(ws, catalog):
    res = train(cyclic_corpus(12, level="char"), small(level="char", layers=2, cell="gru", epochs=1, bptt=20,
                                                       max_train_tokens=400),
                ws, catalog, progress=False)
    train_s = catalog.metric_series(res.run_id)["train"]
    assert "grad_norm.rnn.layer0" in train_s and "grad_norm.rnn.layer1" in train_s and "bpc" in train_s
    valid = catalog.metric_series(res.run_id)["valid"]
    assert "bpc" in valid and abs(valid["bpc"][0][2] - valid["loss"][0][2] / math.log(2)) < 1e-9


def test_determinism_same_seed_same_loss(ws, catalog):
    cfg = small(epochs=1, cell="gru")
    a = train(cyclic_corpus(), cfg, ws, catalog, progress=False)
    b = train(cyclic_corpus(), cfg, ws, catalog, progress=False)
    assert a.metrics["valid"]["loss"] == b.metrics["valid"]["loss"] and a.model_id == b.model_id
    c = train(cyclic_corpus(), small(epochs=1, cell="gru", seed=1), ws, catalog, progress=False)
    assert c.model_id != a.model_id


def test_early_stopping(ws, catalog):
    # a learning rate of ~0 never improves the validation loss after the first epoch
    res = train(cyclic_corpus(), small(epochs=10, patience=2, lr=1e-12, optimizer="sgd"), ws, catalog,
                progress=False)
    assert res.stopped_early and res.epochs_run == 3
    assert catalog.find_model("tiny")["epoch"] == 1


class InterruptAt:
    def __init__(self, step):
        self.step = step

    def on_step(self, info):
        if info["step"] == self.step:
            raise KeyboardInterrupt


def test_ctrl_c_keeps_last_good_checkpoint(ws, catalog):
    corpus = cyclic_corpus()
    first = train(corpus, small(epochs=1), ws, catalog, progress=False)
    steps_per_epoch = catalog.metric_series(first.run_id)["valid"]["loss"][0][0]
    res = train(corpus, small(name="stopped", epochs=5), ws, catalog, progress=False,
                callbacks=[InterruptAt(steps_per_epoch + 3)])
    assert res.interrupted and res.epochs_run == 1 and res.model_id
    assert catalog.get_run(res.run_id)["status"] == "stopped"
    folder = ws.checkpoints_dir / "stopped"
    assert sorted(p.name for p in folder.iterdir()) == ["best", "epoch-1"]  # nothing half written
    assert load_checkpoint(res.checkpoint_path).model_id == res.model_id
    # interrupted before any epoch ended: no checkpoint, run still marked stopped
    early = train(corpus, small(name="early"), ws, catalog, progress=False, callbacks=[InterruptAt(2)])
    assert early.interrupted and early.model_id is None
    assert catalog.get_run(early.run_id)["status"] == "stopped"


def test_time_budget_stops_and_keeps_best(ws, catalog):
    res = train(cyclic_corpus(), small(epochs=50, time_budget_s=0.01), ws, catalog, progress=False)
    assert res.epochs_run == 1 and res.model_id and not res.interrupted


def test_lr_schedules_and_tied_weights(ws, catalog):
    for sched in ("plateau", "cosine", "step"):
        res = train(cyclic_corpus(10), small(epochs=2, lr_schedule=sched, emb=16, hidden=16, tie_weights=True,
                                             name=f"s-{sched}"), ws, catalog, progress=False)
        lrs = [v for _, _, v in catalog.metric_series(res.run_id)["train"]["lr"]]
        assert lrs and res.model_id
    assert load_checkpoint(res.checkpoint_path).model.tied


def test_errors(ws, catalog):
    with pytest.raises(RnnvisError, match="empty training split"):
        train(Corpus("blank", [Document(str(i), "") for i in range(5)]), small(), ws, catalog, progress=False)
    with pytest.raises(RnnvisError, match="too few to split"):
        train(cyclic_corpus(), small(split_fractions=(0.0, 0.5, 0.5)), ws, catalog, progress=False)
    with pytest.raises(RnnvisError, match="unknown cell type"):
        train(cyclic_corpus(), small(cell="transformer"), ws, catalog, progress=False)
    with pytest.raises(RnnvisError, match="unknown training option"):
        train(cyclic_corpus(), {"name": "x", "colour": "red"}, ws, catalog, progress=False)
    with pytest.raises(RnnvisError, match="no class labels"):
        train(cyclic_corpus(), small(task="classify"), ws, catalog, progress=False)
    if not torch.cuda.is_available():
        with pytest.raises(RnnvisError, match="no CUDA GPU"):
            train(cyclic_corpus(), small(device="cuda"), ws, catalog, progress=False)


def test_config_json_round_trip():
    cfg = small(split_fractions=(0.7, 0.2, 0.1))
    assert TrainConfig.from_json(cfg.to_json()) == cfg
