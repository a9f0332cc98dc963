"""The showcase in --quick mode: every section really runs and its figures show what it claims."""
from __future__ import annotations

import json

import numpy as np
import pytest

from ebmlang.cli.showcase import ISING_CRITICAL_T, load_example, main, onsager_magnetisation, synthetic_image

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")
FIGURES = ("ising_magnetisation.png", "ising_snapshots.png", "denoise.png", "ring.png", "rbm_training.png",
           "rbm_samples.png", "composition.png")


def test_onsager_curve_matches_known_values():
    # m(T) = (1 - sinh(2/T)^-4)^(1/8): sinh(4/3) = 1.76504 gives 0.98650 at T = 1.5; 0 above T_c
    np.testing.assert_allclose(onsager_magnetisation(np.array([1.5])), [0.98650], atol=1e-4)
    assert onsager_magnetisation(np.array([ISING_CRITICAL_T + 1e-6, 3.0])).tolist() == [0.0, 0.0]
    assert ISING_CRITICAL_T == pytest.approx(2.26918531)


def test_synthetic_image_has_the_stated_noise_level():
    clean, noisy = synthetic_image(128, seed=3)
    assert set(np.unique(clean)) == {0, 1}
    # 16384 pixels flipped with p = 0.15: sd of the rate is 0.0028, so 0.01 is > 3 sd
    assert abs(np.mean(clean != noisy) - 0.15) < 0.01


def test_load_example_overrides_constants_and_refuses_unknown_ones():
    small = load_example("ising.ebm", "numpy", L=6)
    assert small.variables["s"].shape == (6, 6)
    from ebmlang.errors import EbmError

    with pytest.raises(EbmError, match="no `const M"):
        load_example("ising.ebm", "numpy", M=3)


def test_quick_showcase_runs_every_section_and_writes_every_figure(tmp_path, capsys):
    from matplotlib.image import imread

    status = main(["--out", str(tmp_path), "--quick"])
    output = capsys.readouterr().out
    summary = json.loads((tmp_path / "summary.json").read_text())
    sections = {s["name"]: s for s in summary["sections"]}
    failed = {name: s["why"] for name, s in sections.items() if s["status"] != "ok"}
    assert failed == {} and status == 0, failed
    assert set(sections) == {"Ising", "Denoise", "Ring", "RBM", "Composition"}
    assert "ebmlang showcase" in output  # the summary table
    for name in FIGURES:
        pixels = imread(tmp_path / name)
        assert pixels[..., :3].std() > 0.05, f"{name} is blank"

    ising = sections["Ising"]["numbers"]
    # ordered at T = 1.6 (Onsager 0.98), disordered at T = 3.2 (|m| of a 12x12 lattice ~ 0.1-0.3)
    assert ising["m_lowest_t"] > 0.9 and ising["m_highest_t"] < 0.5
    denoise = sections["Denoise"]["numbers"]
    assert denoise["denoised_accuracy"] > denoise["noisy_accuracy"] + 0.05
    ring = sections["Ring"]["numbers"]
    assert abs(ring["mean_radius"] - 4.0) < 0.3 and ring["modes_visited"] >= 4
    rbm = sections["RBM"]["numbers"]
    assert rbm["log_likelihood"][-1] > rbm["log_likelihood"][0] + 5  # from -44 nats/image at init
    composition = sections["Composition"]["numbers"]
    assert composition["agreement"]["posterior.ebm"] == 1.0
    assert composition["agreement"]["prior * likelihood"] == 1.0
    assert max(composition["energy_gap"]["posterior.ebm"], composition["energy_gap"]["prior * likelihood"]) < 1e-3


def test_a_failing_section_is_reported_and_the_rest_still_run(tmp_path, monkeypatch, capsys):
    import ebmlang.cli.showcase as showcase

    def broken(*args):
        raise RuntimeError("no RBM today")

    monkeypatch.setattr(showcase, "SECTIONS", (("RBM", broken), ("Denoise", showcase.denoise_section)))
    status = main(["--out", str(tmp_path), "--quick"])
    out = capsys.readouterr().out
    assert status == 1
    assert "[RBM] FAILED: RuntimeError: no RBM today" in out
    assert (tmp_path / "denoise.png").exists()
