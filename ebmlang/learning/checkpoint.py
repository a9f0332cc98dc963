"""Checkpoints: a model's params in a safetensors file, with the source that defines it.

A checkpoint stores only arrays (safetensors; never pickle) and string metadata:

    format        "ebmlang-checkpoint"      version   "1"
    source        the .ebm source text      source_sha256   its SHA-256
    file, model   where it came from and which model of the file
    imports       (when the source imports files) JSON {path relative to the model
                  file's directory: source text} of every file it imports, directly or
                  not, with imports_sha256
    backend, dtype
    arrays_sha256 SHA-256 over every array's name, dtype, shape and bytes

Loading recompiles the stored source with its imports served from the checkpoint alone
(a checkpoint is untrusted input: it never makes ebmlang read another file), checks the hashes (safetensors itself does not
checksum the data) and that the params match the model's names and shapes; anything
wrong is an `EbmError`. Training checkpoints written by `fit` are the same files with
extra arrays under `__fit__/` (optimizer state, persistent chains) and a JSON `fit`
entry in the metadata; `read_model_checkpoint` reads them as plain models.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import warnings
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from ebmlang.backends.base import expected_param_shapes
from ebmlang.errors import EbmError
from ebmlang.graph.ir import FactorGraph
from ebmlang.graph.lower import lower_source
from ebmlang.language import ast
from ebmlang.language.checker import check_program
from ebmlang.language.loader import read_source
from ebmlang.language.parser import parse_source

FORMAT = "ebmlang-checkpoint"
VERSION = "1"
FIT_PREFIX = "__fit__/"


def source_hash(source: str) -> str:
    return hashlib.sha256(source.encode("utf-8")).hexdigest()


def arrays_hash(arrays: Mapping[str, np.ndarray]) -> str:
    digest = hashlib.sha256()
    for name in sorted(arrays):
        array = np.asarray(arrays[name], order="C")
        digest.update(f"{name}|{array.dtype.str}|{array.shape}|".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def model_metadata(model) -> dict[str, str]:
    graph = model.graph
    if not graph.source:
        raise EbmError(f"model '{graph.name}' has no source text to store in a checkpoint",
                       hint="models built in Python by composition cannot be saved as one file; write the "
                            "composite in .ebm (`model C = A * B`) and load that, or save each expert")
    metadata = {
        "format": FORMAT, "version": VERSION, "source": graph.source, "source_sha256": source_hash(graph.source),
        "file": graph.file, "model": graph.name, "backend": model.backend_name, "dtype": model.backend.dtype,
    }
    imports = imported_sources(graph.source, graph.file)
    if imports:
        encoded = json.dumps(imports, sort_keys=True)
        metadata.update(imports=encoded, imports_sha256=source_hash(encoded))
    return metadata


def import_key(target: str, top_file: str) -> str:
    """How a checkpoint names an imported file: its path relative to the directory of the
    model file, with '/' separators (the same at saving and at loading, whatever the
    working directory)."""
    directory = "" if top_file.startswith("<") else os.path.dirname(top_file)
    return os.path.relpath(target, directory or os.curdir).replace(os.sep, "/")


def imported_sources(source: str, file: str) -> dict[str, str]:
    """{import_key: text} of every file that `source` (the text of `file`) imports,
    directly or through other imports, read from disk as the checker resolves them."""
    program = parse_source(source, file)
    if not any(isinstance(item, ast.ImportDecl) for item in program.items):
        return {}
    sources: dict[str, str] = {}

    def recording(target: str) -> str:
        text = read_source(target)
        sources[import_key(target, file)] = text
        return text

    # The model compiled already, so its imports were allowed then (possibly under an
    # allow_root this graph does not record); any root is accepted when re-reading them.
    anchor = Path(os.path.abspath(file if not file.startswith("<") else os.curdir)).anchor
    check_program(program, loader=recording, allow_root=anchor)
    return sources


def checkpoint_loader(path, metadata: Mapping[str, str]):
    """A Loader (path -> text) that serves the imported files stored in a checkpoint and
    refuses every other path: a crafted checkpoint must not read files on this machine."""
    stored = stored_imports(path, metadata)
    top_file = metadata.get("file", "<checkpoint>")

    def load(target: str) -> str:
        key = import_key(target, top_file)
        if key not in stored:
            raise EbmError(f"{path}: the stored source imports '{key}', which the checkpoint does not contain",
                           hint="a checkpoint's imports are read from the checkpoint only, never from disk; "
                                "load the .ebm model file, then save the checkpoint again to store its imports")
        return stored[key]

    return load


def stored_imports(path, metadata: Mapping[str, str]) -> dict[str, str]:
    """The checkpoint's {import_key: text}, checked ({} when it stores none)."""
    if "imports" not in metadata:
        return {}
    encoded = metadata["imports"]
    if source_hash(encoded) != metadata.get("imports_sha256"):
        raise EbmError(f"{path}: the stored imported sources do not match their SHA-256 hash",
                       hint="the file was edited or corrupted; use another checkpoint")
    try:
        stored = json.loads(encoded)
    except ValueError:
        stored = None
    if not (isinstance(stored, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in stored.items())):
        raise EbmError(f"{path}: the 'imports' metadata entry is not a JSON object of path -> source text",
                       hint="the file is corrupted; use another checkpoint")
    return stored


def write_checkpoint(path: str | Path, model, extra: Mapping[str, np.ndarray] | None = None,
                     extra_metadata: Mapping[str, str] | None = None) -> Path:
    """Write params (plus `extra` arrays) atomically: a temporary file renamed into place."""
    from safetensors.numpy import save_file

    path = Path(path)
    arrays = {name: np.asarray(model.backend.to_numpy(value), order="C") for name, value in model.params.items()}
    for name, value in (extra or {}).items():
        arrays[name] = np.asarray(value, order="C")
    metadata = model_metadata(model)
    metadata.update(extra_metadata or {})
    metadata["arrays_sha256"] = arrays_hash(arrays)
    path.parent.mkdir(parents=True, exist_ok=True)
    # A unique temporary name per writer: two saves to one path never share a file, and
    # an interrupted write leaves nothing behind.
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    try:
        save_file(arrays, temporary, metadata=metadata)
        os.chmod(temporary, 0o666 & ~_umask())  # written private; a checkpoint is an ordinary file
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    return path


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


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


def check_params(path, graph, arrays: Mapping[str, np.ndarray],
                 expected: Mapping[str, tuple] | None = None) -> dict[str, np.ndarray]:
    """The param arrays of a checkpoint, checked against the model's names and shapes
    (`expected`, default the graph's). The weights of a network whose module is not
    registered yet (`net.<path>`) are taken as stored; registering the module checks them."""
    expected = dict(expected_param_shapes(graph) if expected is None else expected)
    stored = {k: v for k, v in arrays.items() if not k.startswith(FIT_PREFIX)}
    pending = [g + "." for g, p in graph.params.items() if p.is_network and not any(k.startswith(g + ".")
                                                                                   for k in expected)]
    expected.update({k: tuple(v.shape) for k, v in stored.items() if k.startswith(tuple(pending))} if pending else {})
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


def read_model_checkpoint(path: str | Path, budget=None) -> tuple[FactorGraph, dict[str, np.ndarray], dict[str, str]]:
    """The factor graph, params and metadata of a checkpoint: its stored source recompiled
    (imports served from the checkpoint alone) within `budget`, as a `.ebm` file is, and
    its params checked against it."""
    from ebmlang.language.loader import MAX_SOURCE_BYTES

    arrays, metadata = read_checkpoint(path)
    if len(metadata["source"].encode("utf-8")) > MAX_SOURCE_BYTES:
        raise EbmError(f"{path}: the stored model source has more than {MAX_SOURCE_BYTES:,} bytes, more than a "
                       "model file may have", hint="the file was crafted or corrupted; use another checkpoint")
    file = metadata.get("file", "<checkpoint>")
    # Import roots guard the file system; here nothing comes from it (the loader serves the
    # checkpoint's own sources), so a stored key such as "../shared/prior.ebm" is allowed.
    anchor = Path(os.path.abspath(file if not file.startswith("<") else os.curdir)).anchor
    graph = lower_source(metadata["source"], file, metadata["model"], allow_root=anchor,
                         loader=checkpoint_loader(path, metadata), budget=budget)
    return graph, check_params(path, graph, arrays), metadata


def load_params(model, path: str | Path) -> None:
    """Load a checkpoint's params into an existing model (same names and shapes)."""
    arrays, _ = read_checkpoint(path)
    params = check_params(path, model.graph, arrays, model.compiled.param_shapes)
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
    """(path, params, {part: arrays}, info) of the newest readable training checkpoint in
    `directory`, or None when there is none. A newest file that is truncated or corrupted
    (a crash while writing it) is skipped with a warning for the one before it."""
    files = sorted(Path(directory).glob("fit-epoch*.safetensors"))
    if not files:
        return None
    problems = []
    for path in reversed(files):
        try:
            arrays, metadata = read_checkpoint(path)
        except EbmError as error:
            problems.append(error.message)
            continue
        if problems:
            warnings.warn(f"skipped {len(problems)} unreadable training checkpoint(s) in {directory} "
                          f"({problems[0]}); resuming from {path.name}", stacklevel=2)
        return _training_state(path, arrays, metadata)
    raise EbmError(f"no readable training checkpoint in {directory}: {problems[0]}",
                   hint="start over with resume=False (or without --resume), or use another directory")


def _training_state(path: Path, arrays: dict, metadata: dict):
    if "fit" not in metadata:
        raise EbmError(f"{path} is a model checkpoint without training state")
    parts: dict[str, dict[str, np.ndarray]] = {}
    params = {}
    for name, value in arrays.items():
        if name.startswith(FIT_PREFIX):
            part, _, key = name[len(FIT_PREFIX):].partition("/")
            parts.setdefault(part, {})[key] = value
        else:
            params[name] = value
    return path, params, parts, json.loads(metadata["fit"])
