"""Checkpoints: round trips, refusals, and exact resumption of an interrupted fit."""
from __future__ import annotations

import json

import numpy as np
import pytest
from safetensors.numpy import save_file

import ebmlang as ebm
from ebmlang.errors import EbmError
from ebmlang.learning.checkpoint import load_params

RBM = """
const V = 6
const H = 3
observed v[V] : binary
latent   h[H] : binary
param W[V, H] ~ normal(0, 0.1)
param b[V] = 0
param c[H] = 0
energy interaction = -sum(i in 0..V, k in 0..H) v[i] * W[i,k] * h[k]
energy biases      = -sum(i in 0..V) b[i] * v[i] - sum(k in 0..H) c[k] * h[k]
"""

GAUSSIAN = """
observed x[2] : real
param mu[2] = 0
param log_scale = 0
energy quadratic = sum(d in 0..2) (x[d] - mu[d])^2 * exp(-2 * log_scale) / 2 + 2 * log_scale
"""


def binary_data(n=60, seed=0):
    rng = np.random.default_rng(seed)
    prototypes = np.array([[1, 1, 1, 0, 0, 0], [0, 0, 0, 1, 1, 1]], dtype=float)
    data = prototypes[rng.integers(0, 2, n)]
    flips = rng.random(data.shape) < 0.1
    return np.abs(data - flips)


def test_save_and_load_round_trip_across_backends(tmp_path):
    model = ebm.loads(RBM, name="rbm_small.ebm", seed=3)
    model.fit({"v": binary_data()}, epochs=2, batch_size=20, lr=0.05, progress=False)
    path = tmp_path / "rbm.safetensors"
    model.save(path)
    for backend in ("torch", "jax"):
        loaded = ebm.load(path, backend=backend)
        assert loaded.name == model.name and loaded.graph.source == model.graph.source
        for name, value in model.param_values().items():
            np.testing.assert_array_equal(loaded.param_values()[name], value)
        v = binary_data(4, seed=1)
        h = np.zeros((4, 3))
        np.testing.assert_allclose(loaded.energy(v=v, h=h), model.energy(v=v, h=h), rtol=1e-6)


def test_scalar_params_keep_their_shape(tmp_path):
    model = ebm.load("examples/ising.ebm")
    model.set_params(J=0.3, h=-0.1)
    model.save(tmp_path / "ising.safetensors")
    loaded = ebm.load(tmp_path / "ising.safetensors")
    assert loaded.param_values()["J"].shape == ()
    assert float(loaded.param_values()["J"]) == pytest.approx(0.3)


def test_refuses_params_that_do_not_fit_the_model(tmp_path):
    model = ebm.loads(RBM, seed=0)
    path = tmp_path / "rbm.safetensors"
    model.save(path)
    other = ebm.loads(RBM.replace("const H = 3", "const H = 4"))
    with pytest.raises(EbmError, match=r"shape mismatch W: stored \(6, 3\), model \(6, 4\)"):
        load_params(other, path)
    renamed = ebm.loads(RBM.replace("param c[H]", "param d[H]").replace("c[k]", "d[k]"))
    with pytest.raises(EbmError, match="missing d; unexpected c"):
        load_params(renamed, path)


def test_refuses_corrupted_files(tmp_path):
    model = ebm.loads(RBM, seed=0)
    path = tmp_path / "rbm.safetensors"
    model.save(path)
    raw = bytearray(path.read_bytes())

    flipped = tmp_path / "flipped.safetensors"
    data = bytes(raw[:-3]) + bytes([raw[-3] ^ 0xFF]) + bytes(raw[-2:])  # a byte inside the last array
    flipped.write_bytes(data)
    with pytest.raises(EbmError, match="arrays do not match their SHA-256"):
        ebm.load(flipped)

    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(bytes(raw[: len(raw) // 2]))
    with pytest.raises(EbmError, match="not a readable safetensors checkpoint"):
        ebm.load(truncated)

    header_length = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + header_length])
    header["__metadata__"]["source"] = header["__metadata__"]["source"].replace("0.1", "0.2")
    edited = json.dumps(header).encode()
    tampered = tmp_path / "tampered.safetensors"
    tampered.write_bytes(len(edited).to_bytes(8, "little") + edited + bytes(raw[8 + header_length:]))
    with pytest.raises(EbmError, match="stored source does not match its SHA-256"):
        ebm.load(tampered)

    foreign = tmp_path / "foreign.safetensors"
    save_file({"W": np.zeros((6, 3), np.float32)}, str(foreign))
    with pytest.raises(EbmError, match="not an ebmlang checkpoint"):
        ebm.load(foreign)


class Interrupt(Exception):
    pass


def interrupt_after(epoch):
    def callback(model, record):
        if record["epoch"] == epoch:
            raise Interrupt

    return callback


@pytest.mark.parametrize("source, data, options", [
    (RBM, {"v": binary_data()}, dict(method="pcd", chains=8, optimizer="adam", lr=0.05, ema=0.9,
                                     lr_schedule="cosine")),
    (GAUSSIAN, {"x": np.random.default_rng(0).normal([1.0, -1.0], 0.5, (60, 2))},
     dict(method="pcd", chains=16, optimizer="sgd", momentum=0.5, lr=0.02,
          langevin={"steps": 5, "step_size": 0.05, "buffer_size": 64})),
], ids=["rbm-gibbs", "gaussian-replay-buffer"])
def test_interrupted_fit_resumes_to_identical_params(tmp_path, source, data, options):
    common = dict(epochs=5, batch_size=16, seed=11, progress=False, checkpoint_every=1, **options)
    straight = ebm.loads(source, seed=5)
    straight.fit(data, checkpoint_dir=tmp_path / "straight", **common)

    interrupted = ebm.loads(source, seed=5)
    with pytest.raises(Interrupt):
        interrupted.fit(data, checkpoint_dir=tmp_path / "run", callback=interrupt_after(3), **common)
    resumed = ebm.loads(source, seed=99)  # fresh params: everything must come from the checkpoint
    result = resumed.fit(data, checkpoint_dir=tmp_path / "run", **common)
    assert result.resumed_from == 3
    assert [r["epoch"] for r in result.history] == [1, 2, 3, 4, 5]
    for name, value in straight.param_values().items():
        np.testing.assert_array_equal(resumed.param_values()[name], value)
    # Only the newest two training checkpoints are kept, and they load as models.
    files = sorted(p.name for p in (tmp_path / "run").glob("*.safetensors"))
    assert files == ["fit-epoch00004.safetensors", "fit-epoch00005.safetensors"]
    assert set(ebm.load(tmp_path / "run" / files[-1]).params) == set(straight.params)


def test_resuming_with_other_options_is_refused(tmp_path):
    data = {"v": binary_data()}
    model = ebm.loads(RBM, seed=0)
    model.fit(data, epochs=1, batch_size=20, progress=False, checkpoint_dir=tmp_path)
    with pytest.raises(EbmError, match="cannot be resumed"):
        ebm.loads(RBM, seed=0).fit(data, epochs=2, batch_size=10, progress=False, checkpoint_dir=tmp_path)
    # resume=False starts over in the same directory.
    ebm.loads(RBM, seed=0).fit(data, epochs=1, batch_size=10, progress=False, checkpoint_dir=tmp_path,
                               resume=False)


def test_a_corrupt_newest_checkpoint_falls_back_to_the_one_before(tmp_path):
    data = {"v": binary_data()}
    common = dict(batch_size=20, seed=3, progress=False, method="pcd", chains=8)
    straight = ebm.loads(RBM, seed=5)
    straight.fit(data, epochs=4, **common)
    first = ebm.loads(RBM, seed=5)
    first.fit(data, epochs=3, checkpoint_dir=tmp_path, **common)
    # A crash while writing epoch 3's checkpoint: the newest file is truncated.
    newest = tmp_path / "fit-epoch00003.safetensors"
    newest.write_bytes(newest.read_bytes()[:100])
    resumed = ebm.loads(RBM, seed=99)
    with pytest.warns(UserWarning, match="skipped 1 unreadable training checkpoint"):
        result = resumed.fit(data, epochs=4, checkpoint_dir=tmp_path, **common)
    assert result.resumed_from == 2
    for name, value in straight.param_values().items():
        np.testing.assert_array_equal(resumed.param_values()[name], value)
    newest.write_bytes(b"garbage")
    (tmp_path / "fit-epoch00004.safetensors").write_bytes(b"garbage")
    with pytest.raises(EbmError, match="no readable training checkpoint"):
        ebm.loads(RBM, seed=99).fit(data, epochs=5, checkpoint_dir=tmp_path, **common)


def test_saves_leave_no_temporary_files_even_when_they_race(tmp_path):
    import threading

    model = ebm.loads(RBM, seed=0)
    path = tmp_path / "model.safetensors"
    threads = [threading.Thread(target=model.save, args=(path,)) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [p.name for p in tmp_path.iterdir()] == ["model.safetensors"]
    assert set(ebm.load(path).params) == {"W", "b", "c"}


def test_fit_checkpoints_and_resumes_from_the_command_line(tmp_path, capsys):
    from ebmlang.cli.entry import main

    source = tmp_path / "rbm.ebm"
    source.write_text(RBM)
    np.savez(tmp_path / "data.npz", v=binary_data())
    common = ["fit", str(source), "--data", str(tmp_path / "data.npz"), "--backend", "torch", "--quiet",
              "--checkpoint-dir", str(tmp_path / "run"), "--batch-size", "20", "--method", "pcd"]
    assert main(common + ["--epochs", "2"]) == 0
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["fit-epoch00001.safetensors",
                                                                    "fit-epoch00002.safetensors"]
    capsys.readouterr()
    assert main(common + ["--epochs", "3", "--resume"]) == 0
    assert "resumed after epoch 2" in capsys.readouterr().out
    assert main(["fit", str(source), "--data", str(tmp_path / "data.npz"), "--resume"]) == 1
    assert "--resume continues from --checkpoint-dir" in capsys.readouterr().err


def test_initial_values_for_unknown_or_observed_variables_are_refused():
    model = ebm.loads(RBM, backend="numpy")
    with pytest.raises(EbmError, match="(?s)init names 'hh'.*did you mean 'h'"):
        model.sample(chains=2, steps=2, observed={"v": binary_data(1)[0]}, init={"hh": np.zeros(3)},
                     progress=False)
    with pytest.raises(EbmError, match="observed v, whose values are fixed"):
        model.sample(chains=2, steps=2, observed={"v": binary_data(1)[0]}, init={"v": np.zeros(6)},
                     progress=False)
