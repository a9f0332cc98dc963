"""Denoising as Prior x Likelihood: the composed models have the same energy and the same MAP
as the single-file denoise.ebm on a noisy synthetic image."""
from __future__ import annotations

import numpy as np
import pytest

import ebmlang as ebm

N = 64


def _noisy_image(seed=0, flip=0.15):
    rows, cols = np.mgrid[:N, :N]
    clean = (((rows - 30) ** 2 + (cols - 34) ** 2 < 18 ** 2) | ((rows > 50) & (cols < 20))).astype(int)
    flips = np.random.default_rng(seed).random((N, N)) < flip
    return clean, np.where(flips, 1 - clean, clean)


@pytest.mark.parametrize("file, model", [("denoise_composed.ebm", None), ("posterior.ebm", "Posterior")])
def test_composed_denoiser_matches_single_file_denoiser(file, model):
    clean, noisy = _noisy_image()
    single = ebm.load("examples/denoise.ebm")
    composed = ebm.load(f"examples/{file}", model=model)
    assert composed.variables["y"].observed and not composed.variables["x"].observed

    rng = np.random.default_rng(3)
    x = rng.integers(0, 2, size=(3, N, N))
    # float32 sums of ~12k factors: 1e-4 relative covers summation order only.
    np.testing.assert_allclose(composed.energy(x=x, y=noisy[None]), single.energy(x=x, y=noisy[None]), rtol=1e-4)

    result_single = single.argmin(observed={"y": noisy})
    result_composed = composed.argmin(observed={"y": noisy})
    assert result_composed.method == result_single.method == "graphcut"
    assert result_composed.energy == pytest.approx(result_single.energy, rel=1e-5)
    map_single = np.asarray(result_single["x"]).reshape(N, N)
    map_composed = np.asarray(result_composed["x"]).reshape(N, N)
    # Binary Potts with submodular pairs: argmin is exact (graph cut), so the MAPs are identical.
    np.testing.assert_array_equal(map_composed, map_single)
    np.testing.assert_allclose(composed.energy(x=map_composed[None], y=noisy[None]),
                               single.energy(x=map_single[None], y=noisy[None]), rtol=1e-5)
    # And the MAP really denoises: 15% noise goes down to a few percent of wrong pixels.
    assert float(np.mean(map_composed != clean)) < 0.05
