"""Saliency against hand-derived gradients of tiny hand-set RNNs, IG completeness, and the zoo models."""
import numpy as np
import pytest
import torch
from torch import nn

from rnnvis.analysis import Saliency, find_embedding, saliency
from rnnvis.errors import RnnvisError
from rnnvis.models.zoo import Classifier, LanguageModel

WI = np.array([[0.5, -0.3], [0.2, 0.8]])  # (H, E)
WH = np.array([[0.1, 0.4], [-0.6, 0.3]])  # (H, H)
B = np.array([0.05, -0.1])  # (H,) = b_ih, b_hh is 0
W_OUT = np.array([[1.0, -2.0], [0.5, 0.7]])  # (classes, H)
EMB = np.array([[0.0, 0.0], [1.0, -0.5], [-0.7, 0.9], [0.3, 0.4]])  # (vocab, E)


class Tiny(nn.Module):
    """embedding → tanh RNN with hand-set weights → linear head on the last state."""

    def __init__(self):
        super().__init__()
        self.embedding = nn.Embedding(4, 2)
        self.rnn = nn.RNN(2, 2, batch_first=True)
        self.head = nn.Linear(2, 2)
        self.double()  # before the copies, so the hand-set weights are not rounded to float32
        with torch.no_grad():
            self.embedding.weight.copy_(torch.tensor(EMB))
            self.rnn.weight_ih_l0.copy_(torch.tensor(WI))
            self.rnn.weight_hh_l0.copy_(torch.tensor(WH))
            self.rnn.bias_ih_l0.copy_(torch.tensor(B))
            self.rnn.bias_hh_l0.zero_()
            self.head.weight.copy_(torch.tensor(W_OUT))
            self.head.bias.zero_()

    def forward(self, ids):
        out, _ = self.rnn(self.embedding(ids))
        return self.head(out[:, -1])


def analytic_grad(ids, c):
    """∂(logit c)/∂e for a 2-token sentence, derived by hand (chain rule through two tanh steps)."""
    e1, e2 = EMB[ids[0]], EMB[ids[1]]
    h1 = np.tanh(WI @ e1 + B)
    h2 = np.tanh(WI @ e2 + WH @ h1 + B)
    d2 = W_OUT[c] * (1 - h2 ** 2)  # ∂S/∂a2
    d1 = (WH.T @ d2) * (1 - h1 ** 2)  # ∂S/∂a1
    return np.stack([WI.T @ d1, WI.T @ d2]), float(W_OUT[c] @ h2)


@pytest.mark.parametrize("ids", [[1, 2], [3, 1], [2, 2]])
def test_gradient_matches_hand_derivation(ids):
    model = Tiny()
    for c in (0, 1):
        sal = saliency(model, ids, target=c, steps=0)
        want, s = analytic_grad(ids, c)
        np.testing.assert_allclose(sal.grad, want, atol=1e-10)
        np.testing.assert_allclose(sal.grad_abs, np.abs(want), atol=1e-10)
        np.testing.assert_allclose(sal.grad_norm, np.linalg.norm(want, axis=1), atol=1e-10)
        assert sal.score == pytest.approx(s, abs=1e-12)
        assert sal.ig is None and sal.ig_token is None and sal.ig_delta is None
        assert f"class {c}" in sal.target


def test_gradient_matches_jacobian_of_closed_form_three_tokens():
    model = Tiny()
    ids = [1, 2, 3]

    def f(e):  # (T, E) → logit 1, written out independently of nn.RNN
        h = torch.zeros(2, dtype=torch.float64)
        for t in range(e.shape[0]):
            h = torch.tanh(torch.tensor(WI) @ e[t] + torch.tensor(WH) @ h + torch.tensor(B))
        return torch.tensor(W_OUT)[1] @ h

    jac = torch.autograd.functional.jacobian(f, torch.tensor(EMB[ids]))
    sal = saliency(model, ids, target=1, steps=0)
    np.testing.assert_allclose(sal.grad, jac.numpy(), atol=1e-10)


def test_grad_x_input_and_ig_completeness():
    model = Tiny()
    ids = [1, 2, 3]
    sal = saliency(model, ids, steps=256)
    assert isinstance(sal, Saliency)
    np.testing.assert_array_equal(sal.tokens_ids, ids)
    np.testing.assert_allclose(sal.grad_x_input, sal.grad * EMB[ids], atol=1e-12)
    np.testing.assert_allclose(sal.gxi_token, (sal.grad * EMB[ids]).sum(1), atol=1e-12)
    # completeness: ΣIG = S(x) − S(0), up to the Riemann error
    assert abs(sal.ig_delta) < 1e-5
    with torch.no_grad():
        s0 = float(model.head(model.rnn(torch.zeros(1, 3, 2, dtype=torch.float64))[0][:, -1])[0, int(sal.target[-1])])
    assert sal.ig.sum() == pytest.approx(sal.score - s0, abs=1e-5)
    np.testing.assert_allclose(sal.ig_token, sal.ig.sum(1))
    coarse = saliency(model, ids, steps=2)
    assert abs(coarse.ig_delta) > abs(sal.ig_delta)
    # chunked batches give the same integrated gradients
    chunked = saliency(model, ids, steps=256, batch_size=50)
    np.testing.assert_allclose(chunked.ig, sal.ig, atol=1e-12)


def test_predicted_class_and_logprob():
    model = Tiny()
    ids = [1, 2]
    with torch.no_grad():
        logits = model(torch.tensor([ids]))[0]
    pred = int(logits.argmax())
    sal = saliency(model, ids, steps=0)
    assert "predicted class" in sal.target and f"class {pred}" in sal.target
    lp = saliency(model, ids, score="logprob", target=pred, steps=64)
    assert lp.score == pytest.approx(float(logits.log_softmax(-1)[pred]))
    assert abs(lp.ig_delta) < 1e-3


def test_lm_position_matches_manual_autograd_and_is_causal():
    torch.manual_seed(0)
    model = LanguageModel(vocab_size=7, cell="lstm", emb=3, hidden=5, dropout=0.3)
    model.train()
    ids = [1, 4, 2, 6, 3]
    p = 2
    sal = saliency(model, ids, position=p, score="logprob", steps=128)
    assert model.training  # flag restored
    assert not model.embedding._forward_hooks  # hook removed
    model.eval()
    e = model.embedding.weight[ids].detach().clone().requires_grad_(True)
    out, _ = model.rnn(e[None])
    s = model.decoder(out).log_softmax(-1)[0, p, ids[p + 1]]
    (g,) = torch.autograd.grad(s, e)
    s = s.detach()
    np.testing.assert_allclose(sal.grad, g.double().numpy(), atol=1e-6)
    assert sal.score == pytest.approx(s.item(), abs=1e-6)
    assert np.all(sal.grad[p + 1:] == 0)  # tokens after p cannot matter
    assert abs(sal.ig_delta) < 1e-3
    assert "position 2" in sal.target
    # the summed score is the sum of the per-position scores
    total = saliency(model, ids, score="logprob", steps=0)
    parts = [saliency(model, ids, position=q, score="logprob", steps=0) for q in range(len(ids) - 1)]
    np.testing.assert_allclose(total.grad, sum(x.grad for x in parts), atol=1e-5)
    assert total.score == pytest.approx(sum(x.score for x in parts), abs=1e-5)
    # an explicit target token may score the position after the last
    last = saliency(model, ids, position=len(ids) - 1, target=0, steps=0)
    assert "token 0" in last.target


def test_zoo_classifier_and_explicit_embedding():
    torch.manual_seed(1)
    model = Classifier(vocab_size=9, num_classes=3, cell="gru", emb=4, hidden=6, bidirectional=True)
    ids = np.array([3, 1, 8, 2])
    a = saliency(model, ids, steps=64)
    b = saliency(model, torch.from_numpy(ids[None]), embedding=model.embedding, steps=64)
    np.testing.assert_allclose(a.grad, b.grad)
    assert a.grad.shape == (4, 4) and a.grad_norm.shape == (4,) and a.ig.shape == (4, 4)
    assert abs(a.ig_delta) < 1e-3
    assert find_embedding(model) is model.embedding


def test_errors_and_hook_removed_on_error():
    model = Tiny()
    with pytest.raises(RnnvisError):
        saliency(model, [1, 2], target=5)
    assert not model.embedding._forward_hooks
    with pytest.raises(RnnvisError):
        saliency(model, [[1, 2], [2, 1]])
    with pytest.raises(RnnvisError):
        saliency(model, [1, 2], score="prob")
    with pytest.raises(RnnvisError):
        saliency(model, [1, 2], position=0)  # classifier has no position
    with pytest.raises(RnnvisError):
        saliency(model, [1, 2], steps=-1)
    with pytest.raises(RnnvisError):
        find_embedding(nn.Linear(2, 2))
    lm = LanguageModel(vocab_size=5, cell="rnn", emb=2, hidden=2)
    with pytest.raises(RnnvisError):
        saliency(lm, [1, 2, 3], position=2)  # no next token at the last position
    with pytest.raises(RnnvisError):
        saliency(lm, [1], steps=0)
    assert not lm.embedding._forward_hooks
