"""Checkpoints: a model's params in a safetensors file, with the source that defines it.

A checkpoint stores only arrays (safetensors; never pickle) and string metadata:

    format        "ebmlang-checkpoint"      version   "1"
    source        the .ebm source text      source_sha256   its SHA-256
    file, model   where it came from and which model of the file
    backend, dtype
    arrays_sha256 SHA-256 over every array's name, dtype, shape and bytes

Loading recompiles the stored source, checks both hashes (safetensors itself does not
checksum the data) and that the params match the model's names and shapes; anything
wrong is an `EbmError`. Training checkpoints written by `fit` are the same files with
extra arrays under `__fit__/` (optimizer state, persistent chains) and a JSON `fit`
entry in the metadata; `load_checkpoint` reads them as plain models.
"""
from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from ebmlang.errors import EbmError

FORMAT = "ebmlang-checkpoint"
VERSION = "1"
FIT_PREFIX = "__fit__/"


def source_hash(source: str) -> str:
    return hashlib.sha256(source.encode("utf-8")).hexdigest()


def arrays_hash(arrays: Mapping[str, np.ndarray]) -> str:
    digest = hashlib.sha256()
    for name in sorted(arrays):
        array = np.ascontiguousarray(arrays[name])
        digest.update(f"{name}|{array.dtype.str}|{array.shape}|".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def model_metadata(model) -> dict[str, str]:
    graph = model.graph
    if not graph.source:
        raise EbmError(f"model '{graph.name}' has no source text to store in a checkpoint",
                       hint="models built in Python by composition cannot be saved as one file; write the "
                            "composite in .ebm (`model C = A * B`) and load that, or save each expert")
    return {
        "format": FORMAT, "version": VERSION, "source": graph.source, "source_sha256": source_hash(graph.source),
        "file": graph.file, "model": graph.name, "backend": model.backend_name, "dtype": model.backend.dtype,
    }


def write_checkpoint(path: str | Path, model, extra: Mapping[str, np.ndarray] | None = None,
                     extra_metadata: Mapping[str, str] | None = None) -> Path:
    """Write params (plus `extra` arrays) atomically: a temporary file renamed into place."""
    from safetensors.numpy import save_file

    path = Path(path)
    arrays = {name: np.ascontiguousarray(model.backend.to_numpy(value)) for name, value in model.params.items()}
    for name, value in (extra or {}).items():
        arrays[name] = np.ascontiguousarray(np.asarray(value))
    metadata = model_metadata(model)
    metadata.update(extra_metadata or {})
    metadata["arrays_sha256"] = arrays_hash(arrays)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    save_file(arrays, str(temporary), metadata=metadata)
    os.replace(temporary, path)
    return path


def save_checkpoint(model, path: str | Path) -> None:
    """Save the model's params and source to a `.safetensors` file (see module doc)."""
    path = Path(path)
    if path.suffix != ".safetensors":
        raise EbmError(f"checkpoints are .safetensors files, not '{path.suffix or path.name}'",
                       hint=f"save to {path.with_suffix('.safetensors')}")
    write_checkpoint(path, model)


def read_checkpoint(path: str | Path) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Arrays and metadata of a checkpoint, with format and integrity checked."""
    from safetensors import safe_open

    path = Path(path)
    if not path.exists():
        raise EbmError(f"no such checkpoint: {path}")
    try:
        with safe_open(str(path), framework="numpy") as handle:
            metadata = dict(handle.metadata() or {})
            arrays = {name: handle.get_tensor(name) for name in handle.keys()}
    except EbmError:
        raise
    except Exception as error:  # safetensors raises its own error types for bad headers/data
        raise EbmError(f"{path} is not a readable safetensors checkpoint ({type(error).__name__}: {error})",
                       hint="the file is truncated or corrupted; use another checkpoint") from None
    if metadata.get("format") != FORMAT:
        raise EbmError(f"{path} is a safetensors file but not an ebmlang checkpoint (no '{FORMAT}' metadata)",
                       hint="save models with Model.save(path)")
    if metadata.get("version") != VERSION:
        raise EbmError(f"{path} has checkpoint version {metadata.get('version')!r}; this ebmlang reads {VERSION}")
    for key in ("source", "source_sha256", "arrays_sha256", "model"):
        if key not in metadata:
            raise EbmError(f"{path} lacks the '{key}' metadata entry", hint="the file is corrupted")
    if source_hash(metadata["source"]) != metadata["source_sha256"]:
        raise EbmError(f"{path}: the stored source does not match its SHA-256 hash",
                       hint="the file was edited or corrupted; use another checkpoint")
    if arrays_hash(arrays) != metadata["arrays_sha256"]:
        raise EbmError(f"{path}: the stored arrays do not match their SHA-256 hash",
                       hint="the file is corrupted; use another checkpoint")
    return arrays, metadata


def check_params(path, graph, arrays: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The param arrays of a checkpoint, checked against the model's names and shapes."""
    from ebmlang.backends.base import expected_param_shapes

    expected = expected_param_shapes(graph)
    stored = {k: v for k, v in arrays.items() if not k.startswith(FIT_PREFIX)}
    missing = [k for k in expected if k not in stored]
    unexpected = [k for k in stored if k not in expected]
    wrong = [f"{k}: stored {tuple(stored[k].shape)}, model {expected[k]}"
             for k in expected if k in stored and tuple(stored[k].shape) != tuple(expected[k])]
    if missing or unexpected or wrong:
        details = []
        if missing:
            details.append("missing " + ", ".join(missing))
        if unexpected:
            details.append("unexpected " + ", ".join(unexpected))
        if wrong:
            details.append("shape mismatch " + "; ".join(wrong))
        raise EbmError(f"{path}: the checkpoint's params do not match model '{graph.name}' ({'; '.join(details)})",
                       hint="load the checkpoint with the model it was saved from")
    return {k: np.asarray(stored[k]) for k in expected}


def load_checkpoint(path: str | Path, backend: str | None = None, device: str = "cpu", dtype: str = "float32"):
    """A `Model` rebuilt from a checkpoint: its stored source recompiled and its params
    loaded (backend: as saved unless given)."""
    from ebmlang.model import Model, _compile_source

    arrays, metadata = read_checkpoint(path)
    graph = _compile_source(metadata["source"], metadata.get("file", "<checkpoint>"), metadata["model"])
    params = check_params(path, graph, arrays)
    return Model(graph, backend=backend or metadata.get("backend", "torch"), device=device, dtype=dtype,
                 params=params)


def load_params(model, path: str | Path) -> None:
    """Load a checkpoint's params into an existing model (same names and shapes)."""
    arrays, _ = read_checkpoint(path)
    params = check_params(path, model.graph, arrays)
    model.params.update({k: model.backend.asarray(v) for k, v in params.items()})


# --------------------------------------------------------------------------
# Training checkpoints


def fit_checkpoint_path(directory: str | Path, epoch: int) -> Path:
    return Path(directory) / f"fit-epoch{epoch:05d}.safetensors"


def save_training_state(directory: str | Path, model, epoch: int, state: Mapping[str, Mapping[str, np.ndarray]],
                        info: Mapping, keep: int = 2) -> Path:
    """Params plus training state after `epoch` epochs; `state` maps a part name
    ("optimizer", "objective") to its arrays; `info` is JSON metadata. Keeps the newest
    `keep` training checkpoints of the directory."""
    extra = {f"{FIT_PREFIX}{part}/{name}": value for part, arrays in state.items() for name, value in arrays.items()}
    path = write_checkpoint(fit_checkpoint_path(directory, epoch), model, extra,
                            {"fit": json.dumps(dict(info), sort_keys=True)})
    for old in sorted(Path(directory).glob("fit-epoch*.safetensors"))[:-keep]:
        old.unlink()
    return path


def latest_training_state(directory: str | Path):
    """(path, params, {part: arrays}, info) of the newest training checkpoint in
    `directory`, or None when there is none."""
    files = sorted(Path(directory).glob("fit-epoch*.safetensors"))
    if not files:
        return None
    arrays, metadata = read_checkpoint(files[-1])
    if "fit" not in metadata:
        raise EbmError(f"{files[-1]} is a model checkpoint without training state")
    parts: dict[str, dict[str, np.ndarray]] = {}
    params = {}
    for name, value in arrays.items():
        if name.startswith(FIT_PREFIX):
            part, _, key = name[len(FIT_PREFIX):].partition("/")
            parts.setdefault(part, {})[key] = value
        else:
            params[name] = value
    return files[-1], params, parts, json.loads(metadata["fit"])
