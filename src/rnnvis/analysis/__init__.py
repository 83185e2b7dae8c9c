"""Analyses of recorded states: pure functions from arrays to frozen result dataclasses.

- response: expected response of units to words (RNNVis).
- cocluster: units × words spectral co-clustering ("memory chips" and "word clouds").
- glyphs: sentence glyphs per unit cluster.
- saturation: gate saturation (Karpathy et al. 2015).
- discovery, discovery_scan: units ranked against token annotations (AUC, correlation) and linear probes,
  on arrays or over a corpus in chunks.
- annotations: token annotations (quotes, brackets, code strings/comments, positions, negation, POS).
- metrics: LM loss / perplexity / bpc / top-k; classifier accuracy, macro-F1, confusion, calibration (ECE).
- errors_lm, errors_lm_scan: LM error taxonomy peeled off by oracles (Karpathy et al. 2015), on arrays or
  over a corpus in chunks.
- chunks: token chunks, the unit of every corpus scan in bounded memory.
- slices: classifier error slices (length, negation, intensifiers, contrast, gold label, confidence).
- similarity: linear CKA and SVCCA between layers of two models; per-group loss differences.
- matching: Hungarian unit matching across models; correspondence of two clusterings (ARI).
- dynamics: tidy training curves; saturation, mean |Δh| and CKA to the final checkpoint.
- pattern, pattern_index: LSTMVis pattern select and match, with a run-length index of on-runs.
- saliency: gradient, gradient × input and integrated-gradient token saliency (Li et al. 2016).
- projection: 2-D PCA / t-SNE / UMAP maps of units and of hidden-state trajectories.
"""
from rnnvis.analysis.annotations import (
    ANNOTATIONS,
    annotate,
    bracket_depth,
    code_regions,
    coarse_brown_tag,
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
from rnnvis.analysis.pattern import (
    Match,
    PatternMatches,
    Percentile,
    SelectedUnits,
    match_scan,
    select_units,
    unit_thresholds,
)
from rnnvis.analysis.pattern_index import (
    RunIndex,
    build_run_index,
    load_run_index,
    match_index,
    open_pattern_index,
    select_units_in_store,
)
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
from rnnvis.analysis.dynamics import CheckpointDynamics, Curve, TrainingCurves, checkpoint_dynamics, training_curves
from rnnvis.analysis.errors_lm import (
    ErrorCategory,
    ErrorExample,
    ErrorTaxonomy,
    error_taxonomy,
    ngram_oracle,
    ngram_p_true,
)
from rnnvis.analysis.matching import (
    ClusterCorrespondence,
    UnitMatching,
    adjusted_rand_index,
    cluster_correspondence,
    correlation_matrix,
    match_units,
)
from rnnvis.analysis.metrics import (
    Calibration,
    ClassifierMetrics,
    LMMetrics,
    calibration,
    classifier_metrics,
    confusion_matrix,
    lm_metrics,
    true_token_ranks,
)
from rnnvis.analysis.similarity import (
    LayerSimilarity,
    LossDifference,
    layer_similarity,
    linear_cka,
    loss_difference,
    svcca,
    svcca_correlations,
)
from rnnvis.analysis.slices import ErrorSlices, Misclassified, Slice, error_slices

__all__ = [
    "ANNOTATIONS",
    "Coclusters",
    "ExpectedResponse",
    "GateSaturation",
    "Match",
    "PatternMatches",
    "Percentile",
    "ProbeResult",
    "QUANTILE_LEVELS",
    "RunIndex",
    "SaturationSummary",
    "SelectedUnits",
    "SentenceGlyphs",
    "StreamSaturation",
    "TopWords",
    "UnitDiscovery",
    "UnitRanking",
    "annotate",
    "auc_all_units",
    "bipartite_modularity",
    "bracket_depth",
    "build_run_index",
    "code_regions",
    "coarse_brown_tag",
    "cocluster",
    "discover_units",
    "expected_response",
    "expected_response_from_tokens",
    "gate_saturation",
    "gate_saturation_from_counts",
    "grouped_quantiles",
    "inside_quotes",
    "linear_probe",
    "load_run_index",
    "match_index",
    "match_scan",
    "negation_scope",
    "open_pattern_index",
    "pearson_all_units",
    "pos_annotations",
    "position_in_line",
    "position_in_sentence",
    "rank_units",
    "register_annotation",
    "saturation_fractions",
    "select_units",
    "select_units_in_store",
    "sentence_glyphs",
    "spearman_all_units",
    "top_k_words",
    "unit_thresholds",
    "word_unit_stats",
    # metrics, error analysis, model comparison, training dynamics
    "Calibration",
    "CheckpointDynamics",
    "ClassifierMetrics",
    "ClusterCorrespondence",
    "Curve",
    "ErrorCategory",
    "ErrorExample",
    "ErrorSlices",
    "ErrorTaxonomy",
    "LMMetrics",
    "LayerSimilarity",
    "LossDifference",
    "Misclassified",
    "Slice",
    "TrainingCurves",
    "UnitMatching",
    "adjusted_rand_index",
    "calibration",
    "checkpoint_dynamics",
    "classifier_metrics",
    "cluster_correspondence",
    "confusion_matrix",
    "correlation_matrix",
    "error_slices",
    "error_taxonomy",
    "layer_similarity",
    "linear_cka",
    "lm_metrics",
    "loss_difference",
    "match_units",
    "ngram_p_true",
    "svcca",
    "svcca_correlations",
    "training_curves",
    "true_token_ranks",
]
from rnnvis.analysis.saliency import Saliency, find_embedding, saliency

__all__ += ["Saliency", "find_embedding", "saliency"]
from rnnvis.analysis.projection import Projection, project, project_trajectory, project_units

__all__ += ["Projection", "project", "project_trajectory", "project_units"]
from rnnvis.analysis.chunks import CHUNK_TOKENS, TokenChunk, array_chunks, document_cuts, token_ranges
from rnnvis.analysis.discovery_scan import auc_from_histograms, scan_units
from rnnvis.analysis.errors_lm_scan import taxonomy_scan
from rnnvis.analysis.metrics import lm_metrics_scan
from rnnvis.analysis.similarity_scan import (
    Moments,
    layer_similarity_moments,
    match_units_moments,
    moments_scan,
)

__all__ += ["Moments", "layer_similarity_moments", "match_units_moments", "moments_scan"]
__all__ += ["CHUNK_TOKENS", "TokenChunk", "array_chunks", "auc_from_histograms", "document_cuts", "lm_metrics_scan",
            "ngram_oracle",
            "scan_units", "taxonomy_scan", "token_ranges"]
