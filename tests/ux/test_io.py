"""Round trips and error messages of ebmlang.api.io (.npy / .npz / .safetensors)."""
from __future__ import annotations

import numpy as np
import pytest

from ebmlang.api.io import parse_assignment, read_array, read_arrays, read_assignments, split_spec, write_arrays
from ebmlang.errors import EbmError

ARRAYS = {
    "spins": np.array([[-1, 1], [1, -1]], dtype=np.int64),
    "x": np.linspace(-1.0, 1.0, 12).reshape(3, 4),
    "mask": np.array([True, False, True]),
    "f32": np.arange(5, dtype=np.float32) / 3,
    "scalar": np.array(2.5),
    "label": np.array(7, dtype=np.int64),
}


@pytest.mark.parametrize("suffix", [".npz", ".safetensors"])
def test_archives_round_trip_values_dtypes_and_names(tmp_path, suffix):
    path = write_arrays(tmp_path / f"data{suffix}", ARRAYS)
    back = read_arrays(path)
    assert set(back) == set(ARRAYS)
    for name, value in ARRAYS.items():
        assert back[name].dtype == value.dtype, name
        assert back[name].shape == value.shape, name  # 0-d stays 0-d
        np.testing.assert_array_equal(back[name], value)


def test_npy_round_trip_is_named_after_the_file(tmp_path):
    path = write_arrays(tmp_path / "y.npy", {"anything": ARRAYS["x"]})
    back = read_arrays(path)
    assert list(back) == ["y"]
    np.testing.assert_array_equal(back["y"], ARRAYS["x"])


def test_safetensors_accepts_non_contiguous_and_odd_integer_dtypes(tmp_path):
    strided = np.arange(20.0).reshape(4, 5)[:, ::2]
    small = np.array([1, 2, 3], dtype=np.uint16)
    back = read_arrays(write_arrays(tmp_path / "d.safetensors", {"strided": strided, "small": small}))
    np.testing.assert_array_equal(back["strided"], strided)
    np.testing.assert_array_equal(back["small"], small)  # widened to int64, same values
    assert np.issubdtype(back["small"].dtype, np.integer)


def test_write_creates_parent_folders(tmp_path):
    path = write_arrays(tmp_path / "a" / "b" / "c.npz", {"x": np.ones(2)})
    assert path.exists()


def test_split_spec_only_splits_after_a_known_suffix():
    assert split_spec("data.npz:y") == (split_spec("data.npz")[0], "y")
    assert split_spec("dir:with:colons/y.npy")[1] is None
    path, key = split_spec("run.safetensors:h")
    assert (path.name, key) == ("run.safetensors", "h")


def test_read_array_picks_the_only_array_the_key_or_the_variable_name(tmp_path):
    single = write_arrays(tmp_path / "one.npz", {"whatever": np.arange(3)})
    several = write_arrays(tmp_path / "many.npz", {"x": np.zeros(2), "y": np.ones(2)})
    np.testing.assert_array_equal(read_array(str(single), "y"), np.arange(3))
    np.testing.assert_array_equal(read_array(f"{several}:x"), np.zeros(2))
    np.testing.assert_array_equal(read_array(str(several), "y"), np.ones(2))


def test_ambiguous_archive_asks_for_a_key(tmp_path):
    several = write_arrays(tmp_path / "many.npz", {"x": np.zeros(2), "y": np.ones(2)})
    with pytest.raises(EbmError) as err:
        read_array(str(several), "z")
    assert "holds 2 arrays (x, y)" in str(err.value)
    assert "many.npz:x" in str(err.value)  # the hint shows the key syntax


def test_unknown_key_gets_did_you_mean(tmp_path):
    several = write_arrays(tmp_path / "many.safetensors", {"noisy": np.zeros(2), "clean": np.ones(2)})
    with pytest.raises(EbmError) as err:
        read_array(f"{several}:nosy")
    assert "no array 'nosy'" in str(err.value)
    assert "did you mean 'noisy'" in str(err.value)


def test_missing_file_suggests_a_close_name(tmp_path):
    write_arrays(tmp_path / "noisy.npy", {"y": np.zeros(2)})
    with pytest.raises(EbmError) as err:
        read_arrays(tmp_path / "nosy.npy")
    assert "no such data file" in str(err.value)
    assert "noisy.npy" in str(err.value)


@pytest.mark.parametrize("name", ["data.csv", "data", "image.png"])
def test_unknown_formats_are_refused_with_the_supported_ones(tmp_path, name):
    with pytest.raises(EbmError) as err:
        read_arrays(tmp_path / name)
    assert ".npy, .npz or .safetensors" in str(err.value)
    with pytest.raises(EbmError):
        write_arrays(tmp_path / name, {"x": np.zeros(1)})


def test_npy_refuses_several_arrays(tmp_path):
    with pytest.raises(EbmError) as err:
        write_arrays(tmp_path / "two.npy", {"a": np.zeros(1), "b": np.zeros(1)})
    assert "two.npz" in str(err.value)


@pytest.mark.parametrize("suffix", [".npy", ".npz", ".safetensors"])
def test_corrupt_files_give_an_ebm_error_not_a_traceback(tmp_path, suffix):
    path = tmp_path / f"broken{suffix}"
    path.write_bytes(b"this is not an array file at all")
    with pytest.raises(EbmError) as err:
        read_arrays(path)
    assert f"cannot read {path}" in str(err.value)


def test_object_arrays_are_refused_for_safetensors(tmp_path):
    with pytest.raises(EbmError) as err:
        write_arrays(tmp_path / "o.safetensors", {"o": np.array(["a", "b"])})
    assert "cannot store" in str(err.value)


def test_assignments_parse_and_read(tmp_path):
    write_arrays(tmp_path / "noisy.npy", {"y": np.arange(4)})
    assert parse_assignment("y=noisy.npy") == ("y", "noisy.npy")
    arrays = read_assignments([f"y={tmp_path / 'noisy.npy'}"])
    np.testing.assert_array_equal(arrays["y"], np.arange(4))
    for bad in ["y", "=file.npy", "y=", "1y=file.npy"]:
        with pytest.raises(EbmError) as err:
            parse_assignment(bad)
        assert "--observe" in str(err.value)
    with pytest.raises(EbmError) as err:
        read_assignments([f"y={tmp_path / 'noisy.npy'}", f"y={tmp_path / 'noisy.npy'}"])
    assert "given twice" in str(err.value)
