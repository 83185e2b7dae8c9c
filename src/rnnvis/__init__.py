"""rnnvis: visual analysis of recurrent neural networks.

The public API is flat; names are imported on first use so that `rnnvis --help`
and the server start without loading torch.
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "RnnvisError": ".errors",
    "NotFound": ".errors",
    "Workspace": ".workspace",
    "Catalog": ".catalog",
    # data
    "Document": ".data",
    "Corpus": ".data",
    "list_datasets": ".data",
    "fetch_dataset": ".data",
    "load_dataset": ".data",
    "load_corpus": ".data",
    "load_user_data": ".data",
    "WordTokenizer": ".data",
    "CharTokenizer": ".data",
    # models and training
    "TrainConfig": ".models",
    "train": ".models",
    "evaluate": ".models",
    "build_model": ".models",
    "load_checkpoint": ".models",
    "compute_baselines": ".baselines",
    # recording
    "record": ".recording",
    "Recording": ".recording",
    "record_corpus": ".recording",
    "recompute": ".recording",
    "Store": ".recording",
    "record_model": ".recorder",
    "load_model": ".recorder",
    # analyses (pure functions over arrays; see rnnvis.analysis for the rest)
    "expected_response": ".analysis",
    "expected_response_from_tokens": ".analysis",
    "cocluster": ".analysis",
    "sentence_glyphs": ".analysis",
    "gate_saturation": ".analysis",
    "gate_saturation_from_counts": ".analysis",
    "discover_units": ".analysis",
    "annotate": ".analysis",
    "register_annotation": ".analysis",
    "error_taxonomy": ".analysis",
    "saliency": ".analysis",
    "project_units": ".analysis",
    "project_trajectory": ".analysis",
    "layer_similarity": ".analysis",
    "match_units": ".analysis",
    "select_units": ".analysis",
    "open_pattern_index": ".analysis",
    "match_index": ".analysis",
    "Percentile": ".analysis",
    "import_csv": ".importrun",
    "import_tensorboard": ".importrun",
    # interventions (issue 16)
    "intervene": ".explore.interventions",
    "Edit": ".recording.intervene",
    "run_edited": ".recording.intervene",
    # demo
    "prepare_demo": ".demo",
    # the web app from Python (own models)
    "serve": ".serving",
    "show": ".serving",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'rnnvis' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
