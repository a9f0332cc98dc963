"""Hostile source text and source files: located errors, never tracebacks.

The cases that once crashed the front end (empty ranges in const reductions, integer
literals of hundreds of digits, a 1,000-deep power chain), and files that are not text
files at all (a directory, a named pipe, /dev/zero, Latin-1 bytes, a huge file).
"""
from __future__ import annotations

import os

import pytest

import ebmlang as ebm
from ebmlang.errors import EbmError
from ebmlang.language.loader import MAX_SOURCE_BYTES

LOCATED = {
    "logsumexp over an empty range": ("const T = logsumexp(k in 3..3) k\nlatent x[2] : real\n"
                                      "energy e = T * x[0]^2\n", "logsumexp over an empty index set", 1),
    "a 400-digit literal": ("latent x[2] : real\nenergy e = " + "9" * 400 + " * x[0]^2\n",
                            "integer literal too large", 2),
    "a 5,000-digit literal": ("latent x[2] : real\nenergy e = " + "9" * 5000 + " * x[0]^2\n",
                              "integer literal too large", 2),
    "a 1,000-deep power chain": ("latent x[2] : real\nenergy e = x[0]" + "^1" * 1000 + "\n",
                                 "nested more than 200 levels", 2),
    "1,000 unary minus signs": ("latent x[2] : real\nenergy e = " + "- " * 1000 + "x[0]^2\n", "nested", 2),
    "a real literal that overflows": ("latent x[2] : real\nenergy e = 1e400 * x[0]^2\n",
                                      "real literal too large", 2),
}


@pytest.mark.parametrize("case", list(LOCATED))
def test_hostile_text_gets_a_located_error(case):
    source, message, line = LOCATED[case]
    with pytest.raises(EbmError) as caught:
        ebm.loads(source, backend="numpy")
    assert message in caught.value.message
    assert caught.value.span is not None and caught.value.span.line == line


def test_deep_parentheses_are_not_deep_expressions():
    model = ebm.loads("latent x[2] : real\nenergy e = " + "(" * 1000 + "x[0]^2" + ")" * 1000 + "\n",
                      backend="numpy")
    assert model.energy(x=[3.0, 0.0])[0] == pytest.approx(9.0)


def test_empty_ranges_are_empty_not_crashes():
    # An empty outer range makes the inner range's bounds empty arrays: nothing to sum.
    model = ebm.loads("latent x[2] : real\nenergy e = sum(i in 0..0, j in i..3) 1 + x[0]^2\n", backend="numpy")
    assert model.energy(x=[2.0, 0.0])[0] == pytest.approx(4.0)
    # Wide but finite bounds load and sample without overflow.
    wide = ebm.loads("latent x[2] : real in [0.01, 1e308]\nenergy e = (x[0] - 1)^2 + (x[1] - 1)^2\n",
                     backend="torch", dtype="float64")
    assert wide.energy(x=[1.0, 1.0])[0] == pytest.approx(0.0)


def test_files_that_are_not_text_files_are_refused(tmp_path):
    folder = tmp_path / "folder.ebm"
    folder.mkdir()
    with pytest.raises(EbmError, match="is a directory"):
        ebm.load(folder)
    if os.path.exists("/dev/zero"):
        with pytest.raises(EbmError, match="not a regular file"):
            ebm.load("/dev/zero")
    pipe = tmp_path / "pipe.ebm"
    os.mkfifo(pipe)
    with pytest.raises(EbmError, match="not a regular file"):   # refused without opening (it would block)
        ebm.load(pipe)
    huge = tmp_path / "huge.ebm"
    huge.write_text("#" * (MAX_SOURCE_BYTES + 1))
    with pytest.raises(EbmError, match="more than a model file may have"):
        ebm.load(huge)
    latin = tmp_path / "latin.ebm"
    latin.write_bytes("latent x[2] : real\nenergy e = x[0]^2  # café\n".encode("latin-1"))
    with pytest.raises(EbmError) as caught:
        ebm.load(latin)
    assert "0xe9 is not UTF-8" in caught.value.message
    assert (caught.value.span.line, caught.value.span.column) == (2, 25)


def test_an_imported_file_that_is_not_utf8_is_located(tmp_path):
    (tmp_path / "part.ebm").write_bytes(b"latent x[2] : real\nenergy e = x[0]^2 # \xff\n")
    main = tmp_path / "main.ebm"
    main.write_text('import "part.ebm" as Part\nmodel M = Part\n')
    with pytest.raises(EbmError) as caught:
        ebm.load(main)
    assert "not UTF-8" in caught.value.message and caught.value.span is not None


def test_bounds_beyond_the_float_type_are_refused_at_the_declaration():
    source = "latent x[2] : real in [0.01, 1e308]\nenergy e = (x[0] - 1)^2 + (x[1] - 1)^2\n"
    for backend in ("numpy", "torch", "jax"):
        with pytest.raises(EbmError, match="beyond what float32 holds") as caught:
            ebm.loads(source, backend=backend)
        assert caught.value.span.line == 1
