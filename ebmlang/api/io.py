"""Reading and writing array data: `.npy`, `.npz` and `.safetensors` files.

Data goes in and out of ebmlang as flat dicts of named numpy arrays (the same shape
as a model's state or params), so every file format here maps to `{name: array}`:

    .npy          one array; its name is the file stem (`y.npy` -> "y")
    .npz          numpy's zip of named arrays
    .safetensors  safetensors' flat dict of named tensors

A *source spec* names one array inside a file: `noisy.npy`, `data.npz:y` or
`run.safetensors:x`. Every failure -- a missing file, an unknown format, a key
that is not there -- is an `EbmError` with a hint, never a raw traceback.
"""
from __future__ import annotations

import zipfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from ebmlang.errors import EbmError, did_you_mean

FORMATS = (".npy", ".npz", ".safetensors")

# safetensors stores these numpy dtypes; anything else is converted first.
_SAFETENSORS_DTYPES = (np.bool_, np.uint8, np.int8, np.int16, np.int32, np.int64,
                       np.float16, np.float32, np.float64)


def data_format(path: str | Path) -> str:
    """The format of a data file from its suffix, or an EbmError naming the ones we read."""
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise EbmError(f"unknown data file format '{suffix or Path(path).name}' for {path}",
                       expected="a .npy, .npz or .safetensors file",
                       hint="save arrays with numpy.save / numpy.savez or safetensors.numpy.save_file")
    return suffix


def read_arrays(path: str | Path) -> dict[str, np.ndarray]:
    """Every array in a data file as `{name: array}` (a `.npy` file's name is its stem)."""
    path = Path(path)
    suffix = data_format(path)
    if not path.exists():
        raise EbmError(f"no such data file: {path}",
                       hint=_nearby_files_hint(path))
    try:
        if suffix == ".npy":
            return {path.stem: np.load(path, allow_pickle=False)}
        if suffix == ".npz":
            _check_npz_sizes(path)
            with np.load(path, allow_pickle=False) as archive:
                return {name: archive[name] for name in archive.files}
        from safetensors.numpy import load_file

        return dict(load_file(str(path)))
    except EbmError:
        raise
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as exc:
        raise EbmError(f"cannot read {path} as a {suffix} file: {exc}",
                       hint="the file may be truncated, or saved in another format") from None
    except Exception as exc:  # noqa: BLE001 -- safetensors raises its own error types
        raise EbmError(f"cannot read {path} as a {suffix} file: {exc}",
                       hint="the file may be truncated, or saved in another format") from None


# An archive member may unpack to far more than the file's size (zeros compress well):
# members are sized from their headers before any is read.
MAX_UNPACKED_BYTES = 2 * 2 ** 30


def _check_npz_sizes(path: Path) -> None:
    total = 0
    with zipfile.ZipFile(path) as archive:
        for member in archive.infolist():
            with archive.open(member) as handle:
                version = np.lib.format.read_magic(handle)
                read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                               else np.lib.format.read_array_header_2_0)
                shape, _, dtype = read_header(handle)
            total += int(np.prod(shape, dtype=np.float64)) * np.dtype(dtype).itemsize
            if total > MAX_UNPACKED_BYTES:
                raise EbmError(f"{path} unpacks to more than {MAX_UNPACKED_BYTES / 2 ** 30:g} GiB "
                               f"({member.filename} alone is shape {list(shape)} of {np.dtype(dtype)})",
                               hint="split the data into smaller files")


def split_spec(spec: str) -> tuple[Path, str | None]:
    """`"data.npz:y"` -> (Path("data.npz"), "y"); `"y.npy"` -> (Path("y.npy"), None).

    Only a colon after a known suffix separates a key, so Windows drive letters and
    colons inside directory names are left alone.
    """
    for suffix in FORMATS:
        marker = suffix + ":"
        at = spec.lower().rfind(marker)
        if at >= 0:
            key = spec[at + len(marker):]
            return Path(spec[:at + len(suffix)]), key or None
    return Path(spec), None


def read_array(spec: str, name: str | None = None) -> np.ndarray:
    """One array from a source spec (`file.npy`, `file.npz:key`, `file.safetensors:key`).

    Without a key, a file holding one array gives that array, and a file holding
    several gives the one called `name` (the variable it is meant for).
    """
    path, key = split_spec(spec)
    arrays = read_arrays(path)
    if key is None and len(arrays) == 1:
        return next(iter(arrays.values()))
    chosen = key if key is not None else name
    if chosen is not None and chosen in arrays:
        return arrays[chosen]
    listed = ", ".join(arrays) or "(none)"
    if key is not None:
        raise EbmError(f"{path} has no array '{key}'", expected=f"one of: {listed}",
                       hint=did_you_mean(key, arrays))
    raise EbmError(f"{path} holds {len(arrays)} arrays ({listed}); which one is meant"
                   + (f" for '{name}'?" if name else "?"),
                   hint=f"name it after a colon, e.g. {path}:{next(iter(arrays), 'key')}")


def write_arrays(path: str | Path, arrays: Mapping[str, np.ndarray]) -> Path:
    """Write `{name: array}` to a .npz or .safetensors file (or one array to a .npy file).

    Parent directories are created. Returns the path written.
    """
    path = Path(path)
    suffix = data_format(path)
    arrays = {str(k): np.asarray(v) for k, v in arrays.items()}
    if not arrays:
        raise EbmError(f"nothing to write to {path}: no arrays")
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        if suffix == ".npy":
            if len(arrays) != 1:
                raise EbmError(f"a .npy file holds one array, but there are {len(arrays)} "
                               f"({', '.join(arrays)})",
                               hint=f"write to {path.with_suffix('.npz')} or "
                                    f"{path.with_suffix('.safetensors')} instead")
            np.save(path, next(iter(arrays.values())), allow_pickle=False)
        elif suffix == ".npz":
            np.savez_compressed(path, **arrays)
        else:
            from safetensors.numpy import save_file

            save_file({k: _for_safetensors(k, v) for k, v in arrays.items()}, str(path))
    except OSError as exc:
        raise EbmError(f"cannot write {path}: {exc.strerror or exc}") from None
    return path


def parse_assignment(text: str, flag: str = "--observe") -> tuple[str, str]:
    """`"y=noisy.npy"` -> ("y", "noisy.npy"), or an EbmError showing the expected form."""
    name, sep, spec = text.partition("=")
    name, spec = name.strip(), spec.strip()
    if not sep or not name or not spec:
        raise EbmError(f"cannot read {flag} '{text}'", expected=f"{flag} NAME=FILE, e.g. {flag} y=noisy.npy",
                       hint="FILE is a .npy file, or NAME=file.npz:key for one array of an archive")
    if not name.isidentifier():
        raise EbmError(f"'{name}' in {flag} '{text}' is not a variable name",
                       expected=f"{flag} NAME=FILE")
    return name, spec


def read_assignments(items, flag: str = "--observe") -> dict[str, np.ndarray]:
    """Arrays for repeated `NAME=FILE` flags, each read with `read_array(FILE, NAME)`."""
    out: dict[str, np.ndarray] = {}
    for item in items or ():
        name, spec = parse_assignment(item, flag)
        if name in out:
            raise EbmError(f"'{name}' is given twice with {flag}")
        out[name] = read_array(spec, name)
    return out


def _for_safetensors(name: str, array: np.ndarray) -> np.ndarray:
    # np.ascontiguousarray would turn a 0-d array into shape (1,); a copy keeps scalars scalar.
    array = np.asarray(array)
    if not array.flags.c_contiguous:
        array = array.copy(order="C")
    if array.dtype.type in _SAFETENSORS_DTYPES:
        return array
    if np.issubdtype(array.dtype, np.integer):
        return array.astype(np.int64)
    if np.issubdtype(array.dtype, np.floating):
        return array.astype(np.float64)
    raise EbmError(f"array '{name}' has dtype {array.dtype}, which safetensors cannot store",
                   hint="write numbers (bool, int or float arrays)")


def _nearby_files_hint(path: Path) -> str | None:
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        return f"the folder {folder} does not exist"
    candidates = [p.name for p in folder.iterdir() if p.suffix.lower() in FORMATS]
    return did_you_mean(path.name, candidates)
