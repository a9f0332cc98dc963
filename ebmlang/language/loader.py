"""Reading `.ebm` files and resolving `import "path" as Alias`.

Imports are resolved relative to the importing file and must stay inside an allowed
root directory: by default the directory of the top file (or the working directory
for source text without a file), optionally widened with `allow_root`. The actual
reading goes through a `Loader`, a function from a path to its text, so programs can
live in memory (tests, notebooks) as easily as on disk.
"""
from __future__ import annotations

import os
import stat
from collections.abc import Callable

from ebmlang.errors import EbmError, Span, did_you_mean
from ebmlang.language import ast
from ebmlang.language.parser import parse_source

__all__ = ["Loader", "ImportResolver", "read_source", "read_top_source", "parse_file", "decode_source"]

Loader = Callable[[str], str]


# A model file is source text: anything larger is a mistake (a data file, a device).
MAX_SOURCE_BYTES = 4 * 2 ** 20


def read_source(path: str | os.PathLike) -> str:
    """The text of a `.ebm` file (UTF-8), refused before reading when it is not a regular
    file (a directory, a named pipe, /dev/zero) or larger than MAX_SOURCE_BYTES; text
    that is not UTF-8 is an error located at the first bad byte."""
    path = os.fspath(path)
    info = os.stat(path)
    if stat.S_ISDIR(info.st_mode):
        raise IsADirectoryError(path)
    if not stat.S_ISREG(info.st_mode):
        raise EbmError(f"{path} is not a regular file (a device, a pipe or a socket)",
                       expected="a .ebm text file")
    if info.st_size > MAX_SOURCE_BYTES:
        raise EbmError(f"{path} has {info.st_size:,} bytes, more than a model file may have "
                       f"({MAX_SOURCE_BYTES:,})", expected="a .ebm text file")
    with open(path, "rb") as handle:
        data = handle.read(MAX_SOURCE_BYTES + 1)
    if len(data) > MAX_SOURCE_BYTES:
        raise EbmError(f"{path} grew past {MAX_SOURCE_BYTES:,} bytes while it was read", expected="a .ebm text file")
    return decode_source(data, path)


def decode_source(data: bytes, file: str) -> str:
    """`data` as UTF-8 text; a bad byte is an error at its line and column."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        before = data[:err.start].decode("utf-8", errors="replace")
        line = before.count("\n") + 1
        column = len(before) - (before.rfind("\n") + 1) + 1
        text = data.decode("utf-8", errors="replace")
        raise EbmError(f"byte 0x{data[err.start]:02x} is not UTF-8 text", Span(file, line, column, line, column + 1),
                       source=text, expected="a .ebm file saved as UTF-8",
                       hint="re-save the file as UTF-8 (most editors: 'Save with encoding')") from None


def parse_file(path: str | os.PathLike) -> ast.Program:
    """Read and parse one file (no imports resolved); errors name `path`."""
    path = os.fspath(path)
    return parse_source(_read_top(path), path)


def read_top_source(path: str | os.PathLike) -> str:
    """`read_source` for the file a user named: every failure is an EbmError."""
    return _read_top(os.fspath(path))


def _read_top(path: str) -> str:
    try:
        return read_source(path)
    except FileNotFoundError:
        raise EbmError(f"no such file: {path}", hint=_similar_file_hint(path)) from None
    except IsADirectoryError:
        raise EbmError(f"{path} is a directory, not a .ebm file") from None
    except OSError as err:
        raise EbmError(f"cannot read {path}: {err.strerror or err}") from None


def _similar_file_hint(path: str) -> str | None:
    directory = os.path.dirname(path) or "."
    try:
        names = [n for n in os.listdir(directory) if n.endswith(".ebm")]
    except OSError:
        return None
    match = did_you_mean(os.path.basename(path), names)
    return match


class ImportResolver:
    """Turns import paths into file names, enforcing the allowed roots, and reads them."""

    def __init__(self, top_file: str, *, loader: Loader | None = None,
                 allow_root: str | os.PathLike | None = None):
        self.loader = loader
        virtual = top_file.startswith("<")
        base = os.getcwd() if virtual else os.path.dirname(os.path.abspath(top_file))
        self.roots = [os.path.realpath(base)]
        if allow_root is not None:
            self.roots.append(os.path.realpath(os.fspath(allow_root)))

    @staticmethod
    def identity(path: str) -> str:
        """A key that is the same for every spelling of one file (cycles, caching)."""
        return path if path.startswith("<") else os.path.realpath(path)

    def resolve(self, path: str, importing_file: str, span: Span) -> str:
        """The file name of `import "path"` written in `importing_file`."""
        if not path:
            raise EbmError("empty import path", span, expected='a file name like "prior.ebm"')
        control = next((c for c in path if ord(c) < 32 or ord(c) == 127), None)
        if control is not None:  # the OS refuses a NUL in a path with a ValueError, not an OSError
            raise EbmError(f"import path {path!r} contains the control character {control!r}", span,
                           expected='a file name like "prior.ebm"')
        directory = "" if importing_file.startswith("<") else os.path.dirname(importing_file)
        target = os.path.normpath(os.path.join(directory, path))
        real = os.path.realpath(target)
        if not any(_inside(real, root) for root in self.roots):
            raise EbmError(
                f"import \"{path}\" leaves the allowed directory", span,
                expected="a file under " + " or ".join(_display(root) for root in self.roots),
                hint="pass allow_root= (or --allow-root) to permit another directory")
        return target

    def read(self, target: str, span: Span) -> str:
        try:
            return self.loader(target) if self.loader is not None else read_source(target)
        except (FileNotFoundError, KeyError):
            hint = _similar_file_hint(target) if self.loader is None else None
            raise EbmError(f"cannot find imported file '{target}'", span,
                           hint=hint or "paths are relative to the importing file") from None
        except IsADirectoryError:
            raise EbmError(f"imported path '{target}' is a directory", span) from None
        except UnicodeDecodeError:
            raise EbmError(f"imported file '{target}' is not UTF-8 text", span) from None
        except OSError as err:
            raise EbmError(f"cannot read imported file '{target}': {err.strerror or err}", span) from None


def _display(path: str) -> str:
    """A path as short as possible: relative to the working directory when inside it."""
    relative = os.path.relpath(path)
    return path if relative.startswith("..") else relative


def _inside(path: str, root: str) -> bool:
    try:
        return os.path.commonpath([path, root]) == root
    except ValueError:  # different drives
        return False
