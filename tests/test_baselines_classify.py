"""Classification baselines: majority class and bag-of-words logistic regression."""
import random

from rnnvis.baselines import compute_baselines
from rnnvis.data.corpus import Corpus, Document
from rnnvis.data.tokenize import WordTokenizer


def marker_corpus(n=150, seed=0):
    rng = random.Random(seed)
    filler = ["the", "a", "film", "was", "it", "plot"]
    docs = []
    for i in range(n):
        label = 0 if i % 3 else 1  # imbalanced: two thirds class 0
        words = [rng.choice(filler) for _ in range(rng.randrange(2, 8))] + [["dull", "great"][label]]
        rng.shuffle(words)
        docs.append(Document(str(i), " ".join(words), label=label))
    return Corpus("markers", docs, task="classify", label_names=["neg", "pos"])


def test_majority_and_logreg(catalog):
    corpus = marker_corpus()
    splits = corpus.split(0)
    tok = WordTokenizer().fit(corpus.subset(splits["train"]))
    res = compute_baselines(corpus, splits, tok, "classify", "word", catalog=catalog)
    maj, lr = res["majority"], res["bow_logreg"]
    assert maj["class"] == 0
    n0 = sum(corpus.documents[i].label == 0 for i in splits["test"])
    assert maj["test"]["accuracy"] == n0 / len(splits["test"])
    assert maj["test"]["macro_f1"] < 0.5
    assert lr["test"]["accuracy"] == 1.0 and lr["valid"]["macro_f1"] == 1.0 and lr["C"] > 0
    assert compute_baselines(corpus, splits, tok, "classify", "word", catalog=catalog)["cached"]
