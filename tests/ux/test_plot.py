"""Plots: each function draws what it claims and writes a readable PNG."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import ebmlang as ebm
from ebmlang.api.plot import plot_curves, plot_factor_graph, plot_sample_grid, plot_scatter_contours, plot_trace
from ebmlang.errors import EbmError
from ebmlang.inference.results import Samples

matplotlib_image = pytest.importorskip("matplotlib.image")
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def read_png(path: Path) -> np.ndarray:
    assert path.exists() and path.stat().st_size > 1000
    return matplotlib_image.imread(path)


def fake_samples(chains=3, draws=20, shape=(2,), seed=0) -> Samples:
    rng = np.random.default_rng(seed)
    return Samples({"x": rng.normal(size=(chains, draws) + shape)}, rng.normal(size=(chains, draws)), None,
                   info={"burn_in": 5, "thin": 2})


def test_trace_draws_one_line_per_chain_at_the_recorded_steps(tmp_path):
    samples = fake_samples()
    fig = plot_trace(samples, "x", path=tmp_path / "trace.png")
    energy_axis, variable_axis = fig.axes
    assert len(energy_axis.lines) == 3 and len(variable_axis.lines) == 3
    steps = energy_axis.lines[0].get_xdata()
    np.testing.assert_array_equal(steps, 5 + 2 * np.arange(20))  # burn_in + thin * k
    np.testing.assert_allclose(energy_axis.lines[1].get_ydata(), samples.energy[1])
    np.testing.assert_allclose(variable_axis.lines[2].get_ydata(), samples["x"][2].mean(axis=1))
    assert read_png(tmp_path / "trace.png").ndim == 3


def test_the_trace_legend_sits_above_the_traces_and_the_title_says_what_is_drawn(tmp_path):
    fig = plot_trace(fake_samples(), "x", path=tmp_path / "trace.png")
    energy_axis = fig.axes[0]
    legend = energy_axis.get_legend()
    assert [t.get_text() for t in legend.get_texts()] == ["chain 0", "chain 1", "chain 2"]
    fig.draw_without_rendering()  # lays the figure out, so extents are final
    # Entirely above the plotting area, so no trace is hidden behind it.
    assert legend.get_window_extent().y0 >= energy_axis.get_window_extent().y1 - 1
    title = fig.get_suptitle()
    assert "energy and mean of x" in title and "3 chains x 20 draws" in title and "5 burn-in" in title


def test_trace_of_an_unknown_variable_names_the_sampled_ones():
    with pytest.raises(EbmError) as err:
        plot_trace(fake_samples(), "y")
    assert "no draws of 'y'" in str(err.value)


def test_sample_grid_shows_each_image_with_its_values(tmp_path):
    images = np.stack([np.eye(8) * k for k in range(1, 6)])
    fig = plot_sample_grid(images.reshape(5, 64), image_shape=(8, 8), ncols=3, titles=list("abcde"),
                           path=tmp_path / "grid.png")
    shown = [ax for ax in fig.axes if ax.images]
    assert len(shown) == 5 and len(fig.axes) == 6  # 2 x 3 grid, one empty cell
    np.testing.assert_array_equal(shown[2].images[0].get_array(), np.eye(8) * 3)
    assert [ax.get_title() for ax in shown] == list("abcde")
    pixels = read_png(tmp_path / "grid.png")
    assert pixels[..., :3].std() > 0.05  # not a blank canvas


def test_sample_grid_infers_square_images_and_rejects_bad_shapes():
    fig = plot_sample_grid([np.arange(16.0)])
    assert fig.axes[0].images[0].get_array().shape == (4, 4)
    with pytest.raises(EbmError, match="image_shape"):
        plot_sample_grid([np.arange(15.0)])
    with pytest.raises(EbmError, match="2-d"):
        plot_sample_grid([np.zeros((2, 2, 2))])
    with pytest.raises(EbmError, match="at least one"):
        plot_sample_grid([])


def test_curves_plot_each_series_and_reference_lines(tmp_path):
    fig = plot_curves([1, 2, 3], {"a": [3, 2, 1], "b": [1, 1, 1]}, xlabel="T", ylabel="m",
                      vlines={"T_c": 2.27}, path=tmp_path / "c.png")
    ax = fig.axes[0]
    assert len(ax.lines) == 3  # two series and the vertical line
    np.testing.assert_allclose(ax.lines[0].get_ydata(), [3, 2, 1])
    read_png(tmp_path / "c.png")
    with pytest.raises(EbmError, match="series 'a'"):
        plot_curves([1, 2], {"a": [1, 2, 3]}, xlabel="x", ylabel="y")


def test_curves_draw_error_bars_and_styles_per_series(tmp_path):
    from matplotlib.container import ErrorbarContainer

    fig = plot_curves([1.0, 2.0, 3.0], {"m": [0.9, 0.5, 0.1], "base": [0.4, 0.4, 0.4]}, xlabel="T", ylabel="m",
                      errors={"m": [0.01, 0.05, 0.02]}, styles={"base": {"ls": "--", "marker": ""}},
                      size=(8.0, 4.5), path=tmp_path / "e.png")
    ax = fig.axes[0]
    bars = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
    assert len(bars) == 1 and bars[0].has_yerr and bars[0].get_label() == "m"
    segments = bars[0].lines[2][0].get_segments()
    np.testing.assert_allclose([(top[1] - bottom[1]) / 2 for bottom, top in segments], [0.01, 0.05, 0.02])
    baseline = next(line for line in ax.lines if line.get_label() == "base")
    assert baseline.get_linestyle() == "--"
    assert fig.get_size_inches().tolist() == [8.0, 4.5]
    with pytest.raises(EbmError, match="errors of series 'm'"):
        plot_curves([1, 2], {"m": [1, 2]}, errors={"m": [0.1]}, xlabel="x", ylabel="y")


def test_sample_grid_frames_panels_apart_with_a_colour_key_per_value(tmp_path):
    spins = [np.ones((6, 6)), -np.ones((6, 6)), np.where(np.eye(6) > 0, 1.0, -1.0)]
    fig = plot_sample_grid(spins, cmap="gray", width=8.0, colorbar={-1: "down", 1: "up"}, titles=list("abc"),
                           path=tmp_path / "key.png")
    assert fig.get_size_inches()[0] == 8.0
    key = [ax for ax in fig.axes if ax.get_label() == "<colorbar>"]
    assert len(key) == 1 and [t.get_text() for t in key[0].get_yticklabels()] == ["down", "up"]
    panels = [ax for ax in fig.axes if ax.images and ax.get_label() != "<colorbar>"]
    image = panels[0].images[0]
    assert image.cmap.N == 2  # one colour per value, not a gradient
    assert image.norm(-1.0) != image.norm(1.0)
    boxes = sorted((ax.get_position() for ax in panels), key=lambda box: box.x0)
    assert all(right.x0 > left.x1 for left, right in zip(boxes, boxes[1:]))
    assert all(ax.spines["top"].get_visible() for ax in panels)  # an all-white panel still shows its edge
    read_png(tmp_path / "key.png")


def test_sample_grid_continuous_colour_bar_is_labelled():
    fig = plot_sample_grid([np.arange(16.0).reshape(4, 4)], colorbar="energy")
    key = [ax for ax in fig.axes if ax.get_label() == "<colorbar>"]
    assert len(key) == 1 and key[0].get_ylabel() == "energy"
    with pytest.raises(EbmError, match="at least two values"):
        plot_sample_grid([np.zeros((2, 2))], colorbar={0: "only"})


def test_scatter_contours_evaluates_the_model_energy_on_the_grid(tmp_path):
    model = ebm.load(EXAMPLES / "gaussian.ebm", backend="numpy")
    points = np.random.default_rng(0).normal(size=(50, 2))
    fig = plot_scatter_contours(model, points, "x", extent=(-3, 3, -4, 2), resolution=31,
                                path=tmp_path / "contours.png")
    ax = fig.axes[0]
    scatter = [c for c in ax.collections if len(c.get_offsets()) == 50]
    assert scatter, "the samples are drawn"
    np.testing.assert_allclose(np.asarray(scatter[0].get_offsets()), points)
    # the lowest filled level sits at the minimum of the energy over the grid, which for
    # this Gaussian (mean (1, -1), on the grid) is 0
    filled = next(c for c in ax.collections if hasattr(c, "levels"))
    assert abs(filled.levels[0]) < 1e-6
    read_png(tmp_path / "contours.png")
    sized = plot_scatter_contours(model, points, "x", extent=(-3, 3, -4, 2), resolution=11, size=(8.0, 6.0))
    assert sized.get_size_inches().tolist() == [8.0, 6.0]


def test_scatter_contours_needs_a_two_dimensional_variable():
    model = ebm.load(EXAMPLES / "bounded.ebm", backend="numpy")
    with pytest.raises(EbmError, match="shape \\[2\\]"):
        plot_scatter_contours(model, np.zeros((3, 2)), "p", extent=(0, 1, 0, 1))
    with pytest.raises(EbmError, match="not a variable"):
        plot_scatter_contours(model, np.zeros((3, 2)), "q", extent=(0, 1, 0, 1))


def test_factor_graph_draws_groups_and_templates(tmp_path):
    model = ebm.load(EXAMPLES / "rbm.ebm", backend="numpy")
    fig = plot_factor_graph(model, path=tmp_path / "fg.png")
    labels = {t.get_text() for t in fig.axes[0].texts}
    assert "v[64]\nbinary\nobserved" in labels and "h[16]\nbinary" in labels
    assert any(label.startswith("interaction") and label.endswith("1024 factors") for label in labels)
    read_png(tmp_path / "fg.png")


def test_ground_factor_graph_is_for_small_models(tmp_path):
    sudoku = ebm.load(EXAMPLES / "sudoku.ebm", backend="numpy")
    fig = plot_factor_graph(sudoku, ground=True, path=tmp_path / "ground.png")
    assert "16 ground variables" in fig.axes[0].get_title()
    ising = ebm.load(EXAMPLES / "ising.ebm", backend="numpy")
    with pytest.raises(EbmError, match="max_nodes"):
        plot_factor_graph(ising, ground=True, max_nodes=100)
