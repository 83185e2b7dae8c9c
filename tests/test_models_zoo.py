"""Model zoo: shapes for every configuration, padding invariance, config validation."""
import itertools

import pytest
import torch

from rnnvis.errors import RnnvisError
from rnnvis.models import Classifier, LanguageModel, build_model

V = 23


@pytest.mark.parametrize("cell,layers", list(itertools.product(["rnn", "gru", "lstm"], [1, 2, 3])))
def test_lm_shapes_and_state(cell, layers):
    torch.manual_seed(0)
    lm = build_model({"kind": "lm", "cell": cell, "vocab_size": V, "emb": 6, "hidden": 5, "layers": layers})
    assert isinstance(lm, LanguageModel) and isinstance(lm.rnn, (torch.nn.RNN, torch.nn.GRU, torch.nn.LSTM))
    ids = torch.randint(1, V, (4, 9))
    logits, state = lm(ids)
    assert logits.shape == (4, 9, V)  # (batch, time, vocab)
    h = state[0] if cell == "lstm" else state
    assert h.shape == (layers, 4, 5)
    # continuing from the carried state equals reading the whole sequence at once
    lm.eval()
    full, _ = lm(ids)
    a, st = lm(ids[:, :4])
    b, _ = lm(ids[:, 4:], st)
    assert torch.allclose(torch.cat([a, b], 1), full, atol=1e-6)


def test_lm_lengths_give_state_at_true_last_token():
    torch.manual_seed(0)
    lm = build_model({"kind": "lm", "cell": "lstm", "vocab_size": V, "emb": 6, "hidden": 5, "layers": 2}).eval()
    seq = torch.randint(1, V, (1, 5))
    padded = torch.cat([seq, torch.zeros(1, 3, dtype=torch.long)], 1)
    batch = torch.cat([padded, torch.randint(1, V, (1, 8))], 0)
    logits, (h, c) = lm(batch, lengths=torch.tensor([5, 8]))
    ref_logits, (rh, rc) = lm(seq)
    assert torch.allclose(logits[0, :5], ref_logits[0], atol=1e-6)
    assert torch.allclose(h[:, 0], rh[:, 0], atol=1e-6) and torch.allclose(c[:, 0], rc[:, 0], atol=1e-6)


def test_tied_weights_share_one_tensor():
    lm = build_model({"kind": "lm", "vocab_size": V, "emb": 8, "hidden": 8, "tie_weights": True})
    assert lm.decoder.weight is lm.embedding.weight and lm.tied
    with pytest.raises(RnnvisError, match="emb == hidden"):
        build_model({"kind": "lm", "vocab_size": V, "emb": 8, "hidden": 9, "tie_weights": True})


CLS_CASES = list(itertools.product(["rnn", "gru", "lstm"], [1, 2, 3], [False, True], ["last", "mean", "max"]))


@pytest.mark.parametrize("cell,layers,bidir,pooling", CLS_CASES)
def test_classifier_shapes_and_padding_invariance(cell, layers, bidir, pooling):
    torch.manual_seed(0)
    model = build_model({"kind": "classifier", "cell": cell, "vocab_size": V, "emb": 6, "hidden": 5,
                         "layers": layers, "bidirectional": bidir, "pooling": pooling, "num_classes": 3,
                         "dropout": 0.3})
    assert isinstance(model, Classifier)
    model.eval()
    lengths = torch.tensor([7, 3, 5, 1])
    ids = torch.randint(1, V, (4, 7))
    ids[torch.arange(7)[None, :] >= lengths[:, None]] = 0  # padding
    out = model(ids, lengths)
    assert out.shape == (4, 3)  # (batch, classes)
    for i, n in enumerate(lengths.tolist()):  # each sentence alone, unpadded, gives the same logits
        alone = model(ids[i:i + 1, :n], torch.tensor([n]))
        assert torch.allclose(alone[0], out[i], atol=1e-5), (i, n)
    # garbage in the padding positions changes nothing either
    noisy = ids.clone()
    noisy[ids == 0] = 5
    assert torch.allclose(model(noisy, lengths), out, atol=1e-6)


def test_bidirectional_last_pooling_uses_backward_state_at_position_zero():
    torch.manual_seed(0)
    model = build_model({"kind": "classifier", "cell": "gru", "vocab_size": V, "emb": 4, "hidden": 3,
                         "bidirectional": True, "pooling": "last", "num_classes": 2}).eval()
    ids = torch.randint(1, V, (1, 6))
    out, _ = model.rnn(model.embedding(ids))  # (1, time, 2*hidden)
    expected = torch.cat([out[0, -1, :3], out[0, 0, 3:]])
    assert torch.allclose(model.head(expected), model(ids, torch.tensor([6]))[0], atol=1e-6)


@pytest.mark.parametrize("config,message", [
    ({"cell": "x"}, "unknown cell type 'x' — use rnn, gru or lstm"),
    ({"layers": 0}, "layers=0"),
    ({"layers": 4}, "layers=4"),
    ({"vocab_size": 2}, "vocab_size"),
    ({"dropout": 1.5}, "dropout"),
    ({"kind": "tagger"}, "unknown model kind"),
    ({"kind": "classifier", "num_classes": 1}, "num_classes"),
    ({"kind": "classifier", "num_classes": 2, "pooling": "sum"}, "unknown pooling"),
    ({"bidirectional": True}, "cannot be bidirectional"),
    ({"colour": "red"}, "unknown model option"),
])
def test_build_model_errors(config, message):
    with pytest.raises(RnnvisError) as exc:
        build_model({"kind": "lm", "vocab_size": V, **config})
    assert message in str(exc.value)


def test_config_is_json_and_rebuilds_same_shapes():
    import json

    model = build_model({"kind": "classifier", "cell": "gru", "vocab_size": V, "num_classes": 4, "layers": 2,
                         "bidirectional": True, "emb": 4, "hidden": 3})
    again = build_model(json.loads(json.dumps(model.config)))
    assert {k: v.shape for k, v in model.state_dict().items()} == {k: v.shape for k, v in again.state_dict().items()}
