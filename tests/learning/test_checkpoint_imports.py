"""Checkpoints carry the files their model imports and never read others; `fit` refuses a
model without parameters with an EbmError."""
from __future__ import annotations

import hashlib
import json
import os
import struct

import numpy as np
import pytest

import ebmlang as ebm
from ebmlang.errors import EbmError

PRIOR = "latent x[2] : real\nparam s = 1.0\nenergy q = s * sum(i in 0..2) x[i]^2\n"


def _rewrite_metadata(path, edit) -> None:
    raw = path.read_bytes()
    size = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + size])
    edit(header["__metadata__"])
    encoded = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(encoded)) + encoded + raw[8 + size:])


@pytest.fixture
def saved_with_imports(tmp_path, monkeypatch):
    """A checkpoint of main.ebm -> sub/b.ebm -> ../../shared/prior.ebm (outside the model's
    directory, allowed by allow_root), saved from another working directory."""
    (tmp_path / "shared").mkdir()
    (tmp_path / "m" / "sub").mkdir(parents=True)
    (tmp_path / "shared" / "prior.ebm").write_text(PRIOR)
    (tmp_path / "m" / "sub" / "b.ebm").write_text('import "../../shared/prior.ebm" as P\nmodel B = P\n')
    (tmp_path / "m" / "main.ebm").write_text('import "sub/b.ebm" as S\nmodel M = S\n')
    monkeypatch.chdir(tmp_path / "m")
    model = ebm.load("main.ebm", allow_root=tmp_path)
    (param,) = model.params
    model.set_params(**{param: 2.5})
    path = tmp_path / "model.safetensors"
    model.save(path)
    return path, param


def test_a_checkpoint_loads_its_imports_from_itself_not_from_disk(saved_with_imports, tmp_path, monkeypatch):
    path, param = saved_with_imports
    monkeypatch.chdir(tmp_path)  # keys are relative to the model file, not the working directory
    for name in ("shared/prior.ebm", "m/sub/b.ebm", "m/main.ebm"):
        os.remove(tmp_path / name)
    model = ebm.load(path)
    assert model.param_values()[param] == pytest.approx(2.5)
    # the stored prior's energy s * |x|^2, with s as saved
    assert model.energy(x=np.array([1.0, 2.0])) == pytest.approx(2.5 * 5.0)


def test_an_import_the_checkpoint_does_not_store_is_refused(saved_with_imports):
    # The prior is still on disk; the checkpoint must refuse rather than read it.
    path, _ = saved_with_imports

    def drop_the_prior(metadata):
        stored = json.loads(metadata["imports"])
        del stored["../shared/prior.ebm"]
        metadata["imports"] = json.dumps(stored)
        metadata["imports_sha256"] = hashlib.sha256(metadata["imports"].encode()).hexdigest()

    _rewrite_metadata(path, drop_the_prior)
    with pytest.raises(EbmError, match="imports '../shared/prior.ebm', which the checkpoint does not contain") \
            as caught:
        ebm.load(path)
    assert "latent x" not in str(caught.value)  # nothing of the file on disk is quoted


def test_edited_imports_are_refused(saved_with_imports):
    path, _ = saved_with_imports
    _rewrite_metadata(path, lambda metadata: metadata.update(imports=metadata["imports"].replace("1.0", "9.0")))
    with pytest.raises(EbmError, match="imported sources do not match their SHA-256 hash"):
        ebm.load(path)


def test_fit_without_parameters_is_an_ebm_error():
    model = ebm.loads("latent v[3] : binary\nenergy e = -sum(i in 0..3) v[i]\n", backend="torch")
    with pytest.raises(EbmError, match="no parameters to fit"):
        model.fit({"v": np.array([[1.0, 0.0, 1.0]])}, epochs=1, progress=False)
