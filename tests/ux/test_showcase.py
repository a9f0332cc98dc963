"""The showcase in --quick mode: every section really runs and its figures show what it claims."""
from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from ebmlang.cli.showcase import (
    ISING_CRITICAL_T,
    load_example,
    main,
    onsager_magnetisation,
    run_showcase,
    synthetic_image,
)
from ebmlang.cli.showcase_progress import SectionProgress

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")
FIGURES = ("ising_magnetisation.png", "ising_snapshots.png", "denoise.png", "ring.png", "rbm_training.png",
           "rbm_samples.png", "composition.png", "jem_samples.png", "conv_samples.png", "conv_inpainting.png")


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


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    """The quick showcase, run once for the tests below: its summary, its figures (the
    matplotlib objects, caught on their way to the PNGs) and what it printed, with
    progress asked for as log lines with no wait between them."""
    import ebmlang.api.plot as plot

    out = tmp_path_factory.mktemp("showcase")
    figures, lines = {}, []

    def catching(draw):
        def drawn(*args, **kwargs):
            fig = draw(*args, **kwargs)
            figures[Path(kwargs["path"]).name] = fig
            return fig
        return drawn

    with pytest.MonkeyPatch.context() as patch:
        for name in ("plot_curves", "plot_sample_grid", "plot_scatter_contours"):
            patch.setattr(plot, name, catching(getattr(plot, name)))
        run_showcase(out, quick=True, echo=lines.append, progress="log", progress_every_s=0.0)
    summary = json.loads((out / "summary.json").read_text())
    return SimpleNamespace(out=out, figures=figures, lines=lines,
                           sections={s["name"]: s for s in summary["sections"]})


def test_quick_showcase_runs_every_section_and_writes_every_figure(quick_run):
    from matplotlib.image import imread

    sections = quick_run.sections
    failed = {name: s["why"] for name, s in sections.items() if s["status"] != "ok"}
    assert failed == {}, failed
    assert set(sections) == {"Ising", "Denoise", "Ring", "RBM", "Composition", "JEM", "Conv EBM"}
    for name in FIGURES:
        pixels = imread(quick_run.out / name)
        assert pixels[..., :3].std() > 0.05, f"{name} is blank"

    ising = sections["Ising"]["numbers"]
    # ordered at T = 1.6 (Onsager 0.98), disordered at T = 3.2 (|m| of a 12x12 lattice ~ 0.1-0.3)
    assert ising["m_lowest_t"] > 0.9 and ising["m_highest_t"] < 0.5
    denoise = sections["Denoise"]["numbers"]
    assert denoise["denoised_accuracy"] > denoise["noisy_accuracy"] + 0.05
    ring = sections["Ring"]["numbers"]
    assert abs(ring["mean_radius"] - 4.0) < 0.3 and ring["modes_visited"] >= 4
    rbm = sections["RBM"]["numbers"]
    # from -44 nats/image at init, on images the fit never saw
    assert rbm["test_log_likelihood"][-1] > rbm["test_log_likelihood"][0] + 5
    composition = sections["Composition"]["numbers"]
    assert composition["agreement"]["posterior.ebm"] == 1.0
    assert composition["agreement"]["prior * likelihood"] == 1.0
    jem = sections["JEM"]["numbers"]
    # Two epochs: JEM's free energy already puts held-out digits below uniform noise (0.99
    # measured) where the nll classifier's does not (0.7-0.8); accuracy is still rising.
    assert jem["digits_vs_noise_auroc_jem"] > 0.9 and jem["test_accuracy_jem"] > 0.2
    conv = sections["Conv EBM"]["numbers"]
    assert conv["known_kept"]  # the top half of every draw is the test digit's, exactly
    accuracy = conv["classifier_accuracy"]
    assert accuracy["complete"] > 0.85 and accuracy["inpainted"] > accuracy["mean_fill"] - 0.1


def test_every_figure_has_the_same_width_and_line_plots_the_same_size(quick_run):
    from matplotlib.image import imread

    widths = {name: imread(quick_run.out / name).shape[1] for name in FIGURES}
    assert len(set(widths.values())) == 1, widths
    curves = [quick_run.figures[name].get_size_inches().tolist()
              for name in ("ising_magnetisation.png", "rbm_training.png")]
    assert curves[0] == curves[1]


def figure_titles(fig) -> str:
    suptitle = fig._suptitle.get_text() if fig._suptitle is not None else ""
    return " | ".join([suptitle] + [ax.get_title() for ax in fig.axes])


def test_every_figure_has_a_title_that_says_what_it_shows(quick_run):
    says = {"ising_magnetisation.png": "magnetisation", "ising_snapshots.png": "lattice",
            "denoise.png": "accuracy", "ring.png": "samples", "rbm_training.png": "log-likelihood",
            "rbm_samples.png": "samples", "composition.png": "accuracy"}
    for name, words in says.items():
        assert words in figure_titles(quick_run.figures[name]), name


def test_magnetisation_has_error_bars_from_independent_chains(quick_run):
    from matplotlib.container import ErrorbarContainer

    ising = quick_run.sections["Ising"]["numbers"]
    ax = quick_run.figures["ising_magnetisation.png"].axes[0]
    bars = [c for c in ax.containers if isinstance(c, ErrorbarContainer) and c.has_yerr]
    assert len(bars) == 1
    segments = bars[0].lines[2][0].get_segments()
    half_widths = [(top[1] - bottom[1]) / 2 for bottom, top in segments]
    np.testing.assert_allclose(half_widths, ising["standard_error"])
    # 4 chains at T = 3.2 on a 12x12 lattice do not agree to the last digit
    assert ising["standard_error"][-1] > 0 and ising["chains"] >= 2
    assert "s.e." in bars[0].get_label()


def image_axes(fig):
    return [ax for ax in fig.axes if ax.images and ax.get_label() != "<colorbar>"]


def test_snapshot_panels_stand_apart_and_have_a_colour_key(quick_run):
    fig = quick_run.figures["ising_snapshots.png"]
    keys = [ax for ax in fig.axes if ax.get_label() == "<colorbar>"]
    assert len(keys) == 1
    assert [t.get_text() for t in keys[0].get_yticklabels()] == ["spin -1", "spin +1"]
    boxes = sorted((ax.get_position() for ax in image_axes(fig)), key=lambda box: box.x0)
    assert len(boxes) == 3
    inches = fig.get_size_inches()[0]
    gaps = [(right.x0 - left.x1) * inches for left, right in zip(boxes, boxes[1:])]
    assert min(gaps) > 0.15, gaps  # a clear gap (0.08 inches before they were set apart)
    assert all(ax.spines["left"].get_visible() for ax in image_axes(fig))  # framed: an all-up lattice shows


def test_composition_uses_the_denoising_image_and_titles_its_accuracies(quick_run):
    denoise_panels = image_axes(quick_run.figures["denoise.png"])
    composition_panels = image_axes(quick_run.figures["composition.png"])
    np.testing.assert_array_equal(composition_panels[0].images[0].get_array(),
                                  denoise_panels[0].images[0].get_array())
    denoise = quick_run.sections["Denoise"]["numbers"]
    composition = quick_run.sections["Composition"]["numbers"]
    assert composition["noisy_accuracy"] == denoise["noisy_accuracy"]
    assert composition["accuracy"]["denoise.ebm"] == denoise["denoised_accuracy"]
    titles = [ax.get_title() for ax in composition_panels]
    for name in ("denoise.ebm", "posterior.ebm", "prior * likelihood", "Sharper"):
        assert any(f"accuracy {100 * composition['accuracy'][name]:.1f}%" in t for t in titles), name
    assert f"accuracy {100 * denoise['noisy_accuracy']:.1f}%" in titles[0]
    for fig in (quick_run.figures["denoise.png"], quick_run.figures["composition.png"]):
        assert any(ax.get_label() == "<colorbar>" for ax in fig.axes)


def test_summary_reports_no_energy_gap_of_differently_weighted_models(quick_run):
    def keys(value):
        if isinstance(value, dict):
            for key, inner in value.items():
                yield key
                yield from keys(inner)
        elif isinstance(value, list):
            for inner in value:
                yield from keys(inner)

    summary = json.loads((quick_run.out / "summary.json").read_text())
    assert not [key for key in keys(summary) if "energy_gap" in key]
    energies = quick_run.sections["Composition"]["numbers"]["map_energy"]
    # one energy function written three ways; Sharper (the prior counted twice) is on another scale
    assert set(energies) == {"denoise.ebm", "posterior.ebm", "prior * likelihood"}
    assert max(energies.values()) - min(energies.values()) < 1e-3


def test_rbm_curve_says_training_and_test_set_and_scores_the_baseline_on_both(quick_run):
    fig = quick_run.figures["rbm_training.png"]
    ax = fig.axes[0]
    assert "training" in ax.get_title() and "test" in ax.get_title()
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert sum("training set" in t for t in legend) == 2 and sum("test set" in t for t in legend) == 2, legend
    rbm = quick_run.sections["RBM"]["numbers"]
    assert rbm["train_images"] + rbm["test_images"] == 200 and rbm["test_images"] == 50
    assert len(rbm["train_log_likelihood"]) == len(rbm["test_log_likelihood"]) == rbm["epochs"] + 1
    np.testing.assert_allclose(ax.lines[1].get_ydata(), rbm["test_log_likelihood"])


def test_long_sections_report_progress_when_asked(quick_run):
    ising = [line for line in quick_run.lines if line.startswith("[Ising] T = ")]
    rbm = [line for line in quick_run.lines if line.startswith("[RBM] epoch ")]
    assert len(ising) == 3 and ising[-1].startswith("[Ising] T = 3.20 (3/3, ")
    assert any("test log-lik" in line for line in rbm)


def test_log_progress_prints_a_line_every_few_seconds_at_most():
    clock = iter([0.0, 1.0, 4.9, 5.0, 6.0, 11.0])  # start, then one reading per update
    lines = []
    progress = SectionProgress("Ising", "log", echo=lines.append, every_s=5.0, clock=lambda: next(clock))
    for k in range(1, 6):
        progress.update(k, 5, f"step {k}")
    assert lines == ["[Ising] step 3 (3/5, 5 s)", "[Ising] step 5 (5/5, 11 s)"]
    silent = []
    SectionProgress("Ising", "off", echo=silent.append, every_s=0.0).update(1, 1)
    assert silent == []


def test_auto_progress_is_log_lines_when_stdout_is_not_a_terminal(capsys):
    assert SectionProgress("RBM", "auto").mode == "log"  # pytest's captured stdout is not a tty
    with pytest.raises(ValueError, match="not one of"):
        SectionProgress("RBM", "loud")


def test_a_failing_section_is_reported_and_the_rest_still_run(tmp_path, monkeypatch, capsys):
    import ebmlang.cli.showcase as showcase

    def broken(*args):
        raise RuntimeError("no RBM today")

    monkeypatch.setattr(showcase, "SECTIONS", (("RBM", broken), ("Denoise", showcase.denoise_section)))
    status = main(["--out", str(tmp_path), "--quick"])
    out = capsys.readouterr().out
    assert status == 1
    assert "[RBM] FAILED: RuntimeError: no RBM today" in out
    assert "ebmlang showcase" in out  # the summary table
    assert (tmp_path / "denoise.png").exists()
