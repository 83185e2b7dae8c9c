"""Analyses of recorded states: pure functions from arrays to frozen result dataclasses.

- response: expected response of units to words (RNNVis).
- cocluster: units × words spectral co-clustering ("memory chips" and "word clouds").
- glyphs: sentence glyphs per unit cluster.
- saturation: gate saturation (Karpathy et al. 2015).
- discovery: units ranked against token annotations (AUC, correlation) and linear probes.
- annotations: token annotations (quotes, brackets, code strings/comments, positions, negation, POS).
"""
from rnnvis.analysis.annotations import (
    ANNOTATIONS,
    annotate,
    bracket_depth,
    code_regions,
    inside_quotes,
    negation_scope,
    pos_annotations,
    position_in_line,
    position_in_sentence,
    register_annotation,
)
from rnnvis.analysis.cocluster import Coclusters, bipartite_modularity, cocluster
from rnnvis.analysis.discovery import (
    ProbeResult,
    UnitDiscovery,
    UnitRanking,
    auc_all_units,
    discover_units,
    linear_probe,
    pearson_all_units,
    rank_units,
    spearman_all_units,
)
from rnnvis.analysis.glyphs import SentenceGlyphs, sentence_glyphs
from rnnvis.analysis.response import (
    QUANTILE_LEVELS,
    ExpectedResponse,
    TopWords,
    expected_response,
    expected_response_from_tokens,
    grouped_quantiles,
    top_k_words,
    word_unit_stats,
)
from rnnvis.analysis.saturation import (
    GateSaturation,
    SaturationSummary,
    StreamSaturation,
    gate_saturation,
    gate_saturation_from_counts,
    saturation_fractions,
)

__all__ = [
    "ANNOTATIONS",
    "Coclusters",
    "ExpectedResponse",
    "GateSaturation",
    "ProbeResult",
    "QUANTILE_LEVELS",
    "SaturationSummary",
    "SentenceGlyphs",
    "StreamSaturation",
    "TopWords",
    "UnitDiscovery",
    "UnitRanking",
    "annotate",
    "auc_all_units",
    "bipartite_modularity",
    "bracket_depth",
    "code_regions",
    "cocluster",
    "discover_units",
    "expected_response",
    "expected_response_from_tokens",
    "gate_saturation",
    "gate_saturation_from_counts",
    "grouped_quantiles",
    "inside_quotes",
    "linear_probe",
    "negation_scope",
    "pearson_all_units",
    "pos_annotations",
    "position_in_line",
    "position_in_sentence",
    "rank_units",
    "register_annotation",
    "saturation_fractions",
    "sentence_glyphs",
    "spearman_all_units",
    "top_k_words",
    "word_unit_stats",
]
