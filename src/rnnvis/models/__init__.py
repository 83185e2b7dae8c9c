"""Models: the zoo (LMs and classifiers on fused RNN/GRU/LSTM), batching, training, checkpoints."""
from .batching import (IGNORE_INDEX, batchify, bptt_windows, classify_batches, lm_stream, lm_windows,
                       take_tokens)
from .checkpoint import Checkpoint, load_checkpoint, read_config, save_checkpoint, short_id
from .evaluate import classification_metrics, evaluate, lm_metrics
from .train import TrainConfig, TrainResult, grad_norms, seed_everything, train
from .zoo import CELLS, Classifier, LanguageModel, build_model, resolve_device, validate_config

__all__ = [
    "CELLS", "Classifier", "LanguageModel", "build_model", "validate_config", "resolve_device",
    "Checkpoint", "save_checkpoint", "load_checkpoint", "read_config", "short_id",
    "IGNORE_INDEX", "lm_stream", "take_tokens", "batchify", "bptt_windows", "lm_windows", "classify_batches",
    "evaluate", "lm_metrics", "classification_metrics",
    "TrainConfig", "TrainResult", "train", "grad_norms", "seed_everything",
]
