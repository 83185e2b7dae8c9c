"""Language-model and classifier metrics."""
import math

import numpy as np
import pytest

from rnnvis.analysis.metrics import calibration, classifier_metrics, lm_metrics, true_token_ranks
from rnnvis.errors import RnnvisError


def test_lm_metrics_from_loss_and_ranks():
    loss = np.array([math.log(2), math.log(2), math.log(8), math.log(8)])
    m = lm_metrics(loss, ranks=np.array([1, 3, 6, 1]), level="char")
    assert m.loss == pytest.approx(2 * math.log(2)) and m.perplexity == pytest.approx(4.0)
    assert m.bpc == pytest.approx(2.0) and m.top1 == 0.5 and m.top5 == 0.75
    assert lm_metrics(loss).bpc is None and lm_metrics(loss).top1 is None
    assert true_token_ranks(np.array([[0.1, 2.0, 1.0], [3.0, 2.0, 1.0]]), np.array([2, 0])).tolist() == [2, 1]
    with pytest.raises(RnnvisError):
        lm_metrics(loss, ranks=np.array([0, 1, 2, 3]))


def test_ece_of_a_perfectly_calibrated_classifier_is_near_zero():
    rng = np.random.default_rng(0)
    n = 40000
    conf = rng.uniform(0.5, 1.0, n)  # binary: P(correct) = confidence
    correct = rng.uniform(size=n) < conf
    labels = rng.integers(0, 2, n)
    pred = np.where(correct, labels, 1 - labels)
    probs = np.empty((n, 2))
    probs[np.arange(n), pred] = conf
    probs[np.arange(n), 1 - pred] = 1 - conf
    m = classifier_metrics(probs, labels, bins=10)
    assert m.calibration.ece < 0.01
    assert m.calibration.count.sum() == n and m.calibration.count[:5].sum() == 0
    # an overconfident classifier is caught
    assert calibration(np.full(1000, 0.95), np.arange(1000) % 2 == 0).ece == pytest.approx(0.45)


def test_accuracy_f1_confusion_on_hand_built_examples():
    probs = np.array([[0.9, 0.1, 0], [0.2, 0.7, 0.1], [0.6, 0.3, 0.1], [0.1, 0.1, 0.8], [0.3, 0.4, 0.3]])
    labels = np.array([0, 1, 1, 2, 2])
    m = classifier_metrics(probs, labels, class_names=["neg", "neu", "pos"])
    assert m.accuracy == pytest.approx(0.6)
    assert m.confusion.tolist() == [[1, 0, 0], [1, 1, 0], [0, 1, 1]]
    # F1: neg 2/3, neu 1/2, pos 2/3
    assert m.f1 == pytest.approx([2 / 3, 0.5, 2 / 3]) and m.macro_f1 == pytest.approx((2 / 3 + 0.5 + 2 / 3) / 3)
    with pytest.raises(RnnvisError):
        classifier_metrics(probs * 2, labels)
    with pytest.raises(RnnvisError):
        classifier_metrics(probs, np.array([0, 1, 1, 2, 3]))
