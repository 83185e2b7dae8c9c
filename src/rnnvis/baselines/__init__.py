"""Baselines computed on the same splits and vocabulary as a model, so a user can judge it."""
from .classify import bow_logreg_baseline, majority_baseline
from .compute import CHAR_ORDERS, WORD_ORDERS, baseline_key, compute_baselines
from .ngram import KneserNeyLM

__all__ = ["KneserNeyLM", "majority_baseline", "bow_logreg_baseline", "compute_baselines", "baseline_key",
           "WORD_ORDERS", "CHAR_ORDERS"]
