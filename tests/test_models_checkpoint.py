"""Checkpoints: round trip, content ids, and one clear error per kind of damage."""
import json

import pytest
import torch

from rnnvis.data.corpus import Document
from rnnvis.data.tokenize import WordTokenizer
from rnnvis.errors import NotFound, RnnvisError
from rnnvis.models import build_model, load_checkpoint, read_config, save_checkpoint, short_id

DOCS = [Document("0", "the cat sat on the mat"), Document("1", "the dog sat on the log")]


def _tokenizer():
    return WordTokenizer().fit(DOCS)


@pytest.fixture
def saved(tmp_path):
    torch.manual_seed(0)
    tok = _tokenizer()
    model = build_model({"kind": "lm", "cell": "lstm", "vocab_size": len(tok.vocab), "emb": 6, "hidden": 6,
                         "layers": 2, "tie_weights": True}).eval()
    path = tmp_path / "ckpt"
    model_id = save_checkpoint(path, model, tok, {"dataset": "toy", "metrics": {"valid": {"loss": 1.0}}})
    return path, model, tok, model_id


@pytest.mark.parametrize("kind,extra", [
    ("lm", {"cell": "rnn", "layers": 1}),
    ("lm", {"cell": "gru", "layers": 3}),
    ("classifier", {"cell": "lstm", "layers": 2, "bidirectional": True, "pooling": "mean", "num_classes": 3}),
])
def test_round_trip_identical_outputs_and_id(tmp_path, kind, extra):
    torch.manual_seed(1)
    tok = _tokenizer()
    model = build_model({"kind": kind, "vocab_size": len(tok.vocab), "emb": 5, "hidden": 4, **extra}).eval()
    model_id = save_checkpoint(tmp_path / "a", model, tok, {"dataset": "toy"})
    ck = load_checkpoint(tmp_path / "a")
    assert ck.model_id == model_id and len(model_id) == 64 and ck.short_id == short_id(model_id) == model_id[:16]
    ids = torch.randint(1, len(tok.vocab), (2, 6))
    lengths = torch.tensor([6, 4])
    if kind == "lm":
        assert torch.equal(model(ids)[0], ck.model(ids)[0])
    else:
        assert torch.equal(model(ids, lengths), ck.model(ids, lengths))
    assert ck.tokenizer.vocab.itos == tok.vocab.itos
    assert ck.config["dataset"] == "toy" and ck.config["model"] == model.config
    # saving the loaded model again gives the same content id
    assert save_checkpoint(tmp_path / "b", ck.model, ck.tokenizer, {"dataset": "toy"}) == model_id


def test_tied_weights_survive_round_trip(saved):
    path, model, tok, model_id = saved
    ck = load_checkpoint(path)
    assert ck.model.tied and ck.model_id == model_id
    ids = torch.tensor([[3, 4, 5, 2]])
    assert torch.equal(ck.model(ids)[0], model(ids)[0])
    assert read_config(path)["model_id"] == model_id


def test_overwrite_is_atomic_and_leaves_no_temporaries(saved):
    path, model, tok, _ = saved
    with torch.no_grad():
        model.decoder.bias.add_(1.0)
    new_id = save_checkpoint(path, model, tok, {})
    assert load_checkpoint(path).model_id == new_id
    assert sorted(p.name for p in path.parent.iterdir()) == ["ckpt"]


def test_missing_folder(tmp_path):
    with pytest.raises(NotFound, match="no checkpoint folder"):
        load_checkpoint(tmp_path / "nope")


@pytest.mark.parametrize("name", ["model.safetensors", "config.json", "tokenizer.json"])
def test_missing_file(saved, name):
    path = saved[0]
    (path / name).unlink()
    with pytest.raises(RnnvisError, match=f"has no {name}"):
        load_checkpoint(path)


def test_truncated_weights(saved):
    path = saved[0]
    data = (path / "model.safetensors").read_bytes()
    (path / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(RnnvisError, match="truncated or corrupted") as exc:
        load_checkpoint(path)
    assert "rnnvis train" in str(exc.value)


def test_garbage_weights(saved):
    path = saved[0]
    (path / "model.safetensors").write_bytes(b"\x00\x01not a safetensors file")
    with pytest.raises(RnnvisError, match="truncated or corrupted"):
        load_checkpoint(path)


def test_flipped_bits_in_weights_are_caught_by_the_hash(saved):
    path = saved[0]
    data = bytearray((path / "model.safetensors").read_bytes())
    data[-3] ^= 0xFF  # inside the tensor data: the file still parses
    (path / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(RnnvisError, match="corrupted: its sha256"):
        load_checkpoint(path)


def test_config_that_does_not_match_the_weights(saved):
    path = saved[0]
    cfg = json.loads((path / "config.json").read_text())
    cfg["model"]["hidden"] = 7
    cfg["model"]["emb"] = 7
    (path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(RnnvisError, match="does not match the weights") as exc:
        load_checkpoint(path)
    assert "shape" in str(exc.value) and "restore config.json" in str(exc.value)


def test_config_with_another_cell_type(saved):
    path = saved[0]
    cfg = json.loads((path / "config.json").read_text())
    cfg["model"]["cell"] = "gru"
    (path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(RnnvisError, match="does not match the weights"):
        load_checkpoint(path)


def test_broken_config_json(saved):
    path = saved[0]
    (path / "config.json").write_text("{not json")
    with pytest.raises(RnnvisError, match="not valid JSON"):
        load_checkpoint(path)


def test_expected_id_detects_an_overwritten_checkpoint(saved):
    path, model, tok, model_id = saved
    assert load_checkpoint(path, expected_id=model_id[:16]).model_id == model_id
    with pytest.raises(RnnvisError, match="overwritten"):
        load_checkpoint(path, expected_id="0" * 16)


def test_cuda_requested_without_gpu(saved):
    if torch.cuda.is_available():
        ck = load_checkpoint(saved[0], device="cuda")
        assert next(ck.model.parameters()).is_cuda
    else:
        with pytest.raises(RnnvisError, match="no CUDA GPU"):
            load_checkpoint(saved[0], device="cuda")
