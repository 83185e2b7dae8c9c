"""Checkpoints: a folder with model.safetensors, config.json and tokenizer.json.

Weights are stored with safetensors only (nothing is ever unpickled). A model is
identified by the sha256 of its model.safetensors file (`model_id`; the short
form is its first 16 hex digits), written into config.json so a damaged file is
caught on load. The folder is written atomically: a reader sees the old
checkpoint or the complete new one.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from ..data.tokenize import Tokenizer, tokenizer_from_json
from ..errors import NotFound, RnnvisError
from ..fsutil import atomic_path, sha256_file
from .zoo import build_model, resolve_device

WEIGHTS, CONFIG, TOKENIZER = "model.safetensors", "config.json", "tokenizer.json"
FORMAT_VERSION = 1
_RETRAIN = "retrain with `rnnvis train` or restore the file"


def short_id(model_id: str) -> str:
    """The 16-hex short form of a model id shown to users."""
    return model_id[:16]


@dataclass
class Checkpoint:
    model: nn.Module
    tokenizer: Tokenizer
    config: dict   # {"model": {...}, "train": {...}, "dataset": ..., "split": {...}, "metrics": {...}, ...}
    model_id: str
    path: Path

    @property
    def short_id(self) -> str:
        return short_id(self.model_id)


def _state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """Weights on the CPU, contiguous, with a tied decoder weight stored once (as the embedding)."""
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    if getattr(model, "tied", False):
        state.pop("decoder.weight", None)
    return state


def save_checkpoint(path: str | Path, model: nn.Module, tokenizer: Tokenizer, config: dict | None = None) -> str:
    """Write the checkpoint folder at `path` atomically; returns the model id (sha256 of the weights)."""
    config = dict(config or {})
    model_cfg = getattr(model, "config", None)
    if "model" not in config:
        if model_cfg is None:
            raise RnnvisError("cannot save a model without a config",
                              "build it with rnnvis.models.build_model or pass config={'model': ...}")
        config["model"] = model_cfg
    with atomic_path(path) as tmp:
        tmp.mkdir()
        # One metadata key only: safetensors writes metadata from a hash map, so with two
        # keys their order (and so the file's sha256) could differ between saves.
        save_file(_state_dict(model), str(tmp / WEIGHTS), metadata={"format": f"rnnvis-{FORMAT_VERSION}"})
        model_id = sha256_file(tmp / WEIGHTS)
        config["model_id"] = model_id
        config["format_version"] = FORMAT_VERSION
        (tmp / CONFIG).write_text(json.dumps(config, indent=2, sort_keys=True, default=str), encoding="utf-8")
        (tmp / TOKENIZER).write_text(json.dumps(tokenizer.to_json(), ensure_ascii=False), encoding="utf-8")
    return model_id


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RnnvisError(f"the checkpoint file {path} is unreadable or not valid JSON ({exc})", _RETRAIN) from exc


def _check_shapes(model: nn.Module, state: dict[str, torch.Tensor], folder: Path) -> None:
    expected = _state_dict(model)
    missing = sorted(set(expected) - set(state))
    extra = sorted(set(state) - set(expected))
    wrong = [(k, tuple(state[k].shape), tuple(v.shape)) for k, v in expected.items()
             if k in state and state[k].shape != v.shape]
    if not (missing or extra or wrong):
        return
    parts = []
    if wrong:
        k, got, want = wrong[0]
        parts.append(f"{k} has shape {list(got)} in {WEIGHTS} but the config builds {list(want)}"
                     + (f" (and {len(wrong) - 1} more)" if len(wrong) > 1 else ""))
    if missing:
        parts.append(f"missing weights: {', '.join(missing[:3])}")
    if extra:
        parts.append(f"unexpected weights: {', '.join(extra[:3])}")
    raise RnnvisError(
        f"the config in {folder / CONFIG} does not match the weights: {'; '.join(parts)}",
        "the config was edited or belongs to another model: restore config.json or retrain with `rnnvis train`",
    )


def read_config(path: str | Path) -> dict:
    """config.json of a checkpoint folder, without loading the weights."""
    folder = Path(path)
    if not (folder / CONFIG).is_file():
        raise NotFound(f"no checkpoint config at {folder / CONFIG}", "check the path or train a model with `rnnvis train`")
    return _read_json(folder / CONFIG)


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu", expected_id: str | None = None,
                    verify_hash: bool = True) -> Checkpoint:
    """Rebuild the model from config.json, load its safetensors weights and tokenizer.

    Raises one RnnvisError naming the problem (missing folder or file, truncated or
    corrupted weights, a config that does not match the weights, an overwritten
    checkpoint when `expected_id` is given).
    """
    folder = Path(path)
    if not folder.is_dir():
        raise NotFound(f"no checkpoint folder at {folder}", "check the path, or train a model with `rnnvis train`")
    for name in (WEIGHTS, CONFIG, TOKENIZER):
        if not (folder / name).is_file():
            raise RnnvisError(f"the checkpoint {folder} has no {name}",
                              "the folder is incomplete: " + _RETRAIN)
    config = _read_json(folder / CONFIG)
    if not isinstance(config, dict) or not isinstance(config.get("model"), dict):
        raise RnnvisError(f"{folder / CONFIG} has no 'model' section", _RETRAIN)
    tok_json = _read_json(folder / TOKENIZER)
    try:
        tokenizer = tokenizer_from_json(tok_json)
    except (KeyError, TypeError, ValueError) as exc:
        raise RnnvisError(f"{folder / TOKENIZER} is not a valid tokenizer ({exc})", _RETRAIN) from exc

    weights = folder / WEIGHTS
    model_id = sha256_file(weights)
    recorded = config.get("model_id")
    if expected_id is not None and not model_id.startswith(expected_id) and not (recorded or "").startswith(expected_id):
        raise RnnvisError(
            f"the checkpoint at {folder} holds model {short_id(model_id)}, not {short_id(expected_id)}",
            "it was overwritten by a later training run with the same name: pick the model by its new id or name",
        )
    try:
        state = load_file(str(weights), device="cpu")
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise RnnvisError(f"the checkpoint file {weights} is truncated or corrupted ({exc})", _RETRAIN) from exc
    if verify_hash and recorded and recorded != model_id:
        raise RnnvisError(
            f"the checkpoint file {weights} is corrupted: its sha256 {short_id(model_id)} differs from "
            f"{short_id(recorded)} recorded in config.json", _RETRAIN)

    model = build_model(config["model"])
    _check_shapes(model, state, folder)
    result = model.load_state_dict(state, strict=False)
    leftover = [k for k in result.missing_keys if not (k == "decoder.weight" and getattr(model, "tied", False))]
    if leftover or result.unexpected_keys:  # _check_shapes already covers this; belt and braces
        raise RnnvisError(f"the weights in {weights} do not fit the config (missing {leftover})", _RETRAIN)
    model.to(resolve_device(device))
    model.eval()
    return Checkpoint(model=model, tokenizer=tokenizer, config=config, model_id=model_id, path=folder)
