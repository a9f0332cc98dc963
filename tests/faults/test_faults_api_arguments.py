"""Wrong arguments to the Python API are EbmErrors naming the argument, never tracebacks
or silent NaNs; and the allocations a valid call could still make are priced first.

Cases found by an adversarial session (a helper trying to break the promises of #16).
"""
from __future__ import annotations

import zipfile

import numpy as np
import pytest

import ebmlang as ebm
from ebmlang.errors import EbmError

ISING = "examples/ising.ebm"
RBM = "examples/rbm.ebm"


@pytest.fixture(scope="module")
def models(request):
    root = request.config.rootpath
    return {"ising": ebm.load(root / ISING, backend="numpy"), "rbm": ebm.load(root / RBM, backend="torch"),
            "boltzmann": ebm.load(root / "examples/boltzmann.ebm", backend="numpy")}


@pytest.mark.parametrize("values", [dict(J="abc"), dict(J=object()), dict(J=1 + 2j), dict(J=[1, [2, 3]]),
                                    dict(J=None), dict(J=float("nan"))])
def test_set_params_refuses_what_is_not_a_real_value(models, values):
    with pytest.raises(EbmError):
        models["ising"].set_params(**values)


def test_set_params_refuses_the_wrong_shape(models):
    with pytest.raises(EbmError, match="cannot set param 'W' of shape"):
        models["rbm"].set_params(W=np.zeros(3))


@pytest.mark.parametrize("options", [dict(chains=float("nan")), dict(chains=2.5), dict(chains="4"),
                                     dict(chains=True), dict(steps=1.5), dict(steps=None),
                                     dict(temperature="1"), dict(burn_in=float("nan")), dict(thin=0),
                                     dict(thin=-1), dict(init=5), dict(observed=5), dict(steps=10 ** 23)])
def test_sample_refuses_bad_arguments(models, options):
    with pytest.raises(EbmError):
        models["ising"].sample(**{"chains": 2, "steps": 3, "progress": False, **options})


def test_energy_refuses_states_that_are_not_dicts_or_disagree(models, request):
    for state in ([1, 2], "s"):
        with pytest.raises(EbmError, match="a state is a dict"):
            models["ising"].energy(state)
    den = ebm.load(request.config.rootpath / "examples/denoise.ebm", backend="numpy")
    with pytest.raises(EbmError, match="disagree on the number of rows"):
        den.energy(x=np.zeros((3, 64, 64)), y=np.zeros((2, 64, 64)))


@pytest.mark.parametrize("beta", [float("nan"), float("inf"), "x", None, 0.0, -1.0])
def test_conditional_refuses_a_bad_inverse_temperature(models, beta):
    with pytest.raises(EbmError, match="beta"):
        models["boltzmann"].conditional(beta=beta)


@pytest.mark.parametrize("options", [dict(chains=float("nan")), dict(chains=-1), dict(chains=10 ** 10),
                                     dict(eval_size=float("nan")), dict(callback=5), dict(seed=-1),
                                     dict(grad_clip=float("nan")), dict(grad_clip=0), dict(momentum=-5),
                                     dict(margin=float("nan")), dict(gen_weight=float("nan")),
                                     dict(checkpoint_dir="/dev/null/x"),
                                     dict(lr_schedule=lambda epoch: float("nan"))])
def test_fit_refuses_bad_options(models, options):
    data = {"v": (np.random.default_rng(0).random((20, 64)) < 0.3).astype(float)}
    before = {k: v.copy() for k, v in models["rbm"].param_values().items()}
    with pytest.raises(EbmError):
        models["rbm"].fit(data, epochs=1, progress=False, **options)
    for name, value in models["rbm"].param_values().items():
        assert np.isfinite(value).all(), name   # no silent NaN params
    models["rbm"].set_params(**before)


@pytest.mark.slow  # deflates 3 GiB of zeros: about 9 s
def test_a_compressed_archive_is_sized_before_it_is_unpacked(tmp_path):
    from ebmlang.api.io import read_arrays

    path = tmp_path / "bomb.npz"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        with archive.open("x.npy", "w", force_zip64=True) as handle:
            np.lib.format.write_array_header_1_0(handle, {"descr": "<f8", "fortran_order": False,
                                                          "shape": (3 * 2 ** 27,)})
            zeros = bytes(2 ** 24)
            for _ in range(3 * 2 ** 27 * 8 // len(zeros)):
                handle.write(zeros)
    assert path.stat().st_size < 10 * 2 ** 20
    with pytest.raises(EbmError, match="unpacks to more than 2 GiB"):
        read_arrays(path)


def test_nested_products_of_a_model_with_itself_are_refused_early(tmp_path):
    (tmp_path / "A.ebm").write_text("latent x[2] : real\nenergy e = x[0]^2\n")
    lines = ['import "A.ebm" as A', "model M0 = A * A"] + [f"model M{i} = M{i - 1} * M{i - 1}" for i in range(1, 41)]
    (tmp_path / "nest.ebm").write_text("\n".join(lines) + "\n")
    with pytest.raises(EbmError, match="energy terms, more than 10,000") as caught:
        ebm.load(tmp_path / "nest.ebm", model="M40")
    assert caught.value.span is not None


def test_terms_that_fit_one_by_one_but_not_together_are_refused():
    source = "const N = 1000\nlatent x[N] : real\n" + "".join(
        f"energy e{t}[i in 0..N, j in 0..N] = 0.001 * x[i] * x[j]\n" for t in range(6))
    ebm.loads(source, backend="numpy", budget="1GiB")
    with pytest.raises(EbmError, match="brings the model's index tuples"):
        ebm.loads(source, backend="numpy", budget="128MiB")


def test_a_network_over_many_tuples_is_priced_with_its_layers():
    source = ("latent x[3000] : real\nparam f : mlp(2 -> 256 -> 1)\n"
              "energy e = sum(i in 0..3000, j in 0..3000) f(x[i], x[j])\n")
    with pytest.raises(EbmError, match="a network over up to 9,000,000 index tuples with layers of up to 256"):
        ebm.loads(source, backend="torch")


@pytest.mark.parametrize("langevin", [{"steps": -1}, {"step_size": float("nan")}, {"reinit_prob": 2.0},
                                      {"buffer_size": 0}, {"grad_clip": -1.0}])
def test_langevin_options_are_checked(langevin):
    model = ebm.loads("observed x[2] : real\nparam mu[2] = 0\nenergy q = sum(d in 0..2) (x[d] - mu[d])^2\n")
    with pytest.raises(EbmError, match="langevin"):
        model.fit({"x": np.zeros((8, 2))}, epochs=1, progress=False, method="pcd", langevin=langevin)
