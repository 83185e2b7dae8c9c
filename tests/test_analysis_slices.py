"""Classifier error slices on hand-built examples."""
import numpy as np
import pytest

from rnnvis.analysis.slices import error_slices
from rnnvis.errors import RnnvisError

EXAMPLES = [
    "this movie is not good".split(),                       # 5 tokens, negation, gold 0, wrong
    "a very good film".split(),                              # 4, intensifier, gold 1, right
    "good acting , but the plot is dull".split(),           # 8, contrast, gold 0, right
    "it was fine , though it never really worked and i would not watch it again".split(),  # 16
    ("long " * 25).split(),                                  # 25 tokens, gold 1, wrong
    "Great".split(),                                         # 1 token, gold 1, right
]
LABELS = np.array([0, 1, 0, 0, 1, 1])
PROBS = np.array([[0.2, 0.8], [0.1, 0.9], [0.6, 0.4], [0.45, 0.55], [0.95, 0.05], [0.3, 0.7]])


def test_slices_count_correctly():
    s = error_slices(EXAMPLES, PROBS, LABELS, class_names=["neg", "pos"])
    assert s.n == 6 and s.accuracy == pytest.approx(3 / 6)
    counts = {x.name: (x.count, x.correct) for x in s.family("length")}
    assert counts == {"1-10": (4, 3), "11-20": (1, 0), "21-40": (1, 0), ">40": (0, 0)}
    assert s.get("negation", "with").count == 2 and s.get("negation", "with").correct == 0
    assert s.get("negation", "without").count == 4 and s.get("negation", "without").accuracy == 0.75
    assert s.get("intensifier", "with").indices.tolist() == [1, 3]  # very, really
    assert s.get("contrast", "with").indices.tolist() == [2, 3]  # but, though
    assert s.get("gold", "neg").count == 3 and s.get("gold", "neg").error_rate == pytest.approx(2 / 3)
    conf = {x.name: x.count for x in s.family("confidence")}
    assert conf == {"0-0.5": 0, "0.5-0.7": 3, "0.7-0.9": 2, ">0.9": 1}
    assert np.isnan(s.get("length", ">40").accuracy)
    # mistakes, most confident first
    assert [e.index for e in s.errors] == [4, 0, 3]
    assert s.errors[0].label == "pos" and s.errors[0].predicted == "neg" and s.errors[0].saliency is None


def test_saliency_rides_along_and_is_checked():
    sal = [np.arange(len(t), dtype=float) for t in EXAMPLES]
    s = error_slices(EXAMPLES, PROBS, LABELS, saliency=sal)
    assert s.errors[1].saliency.tolist() == [0, 1, 2, 3, 4]
    sal[0] = np.zeros(2)
    with pytest.raises(RnnvisError):
        error_slices(EXAMPLES, PROBS, LABELS, saliency=sal)
    with pytest.raises(RnnvisError):
        error_slices(EXAMPLES[:5], PROBS, LABELS)
