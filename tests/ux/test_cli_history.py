"""`ebm fit --history`: the figure shows the metric that means most for the run (a
likelihood or a score-matching loss before the training loss), at the epochs it was
taken, with its units, a title saying what it is, and whole-number epoch ticks."""
from __future__ import annotations

import numpy as np
import pytest

from ebmlang.cli.command_history import write_history
from ebmlang.cli.entry import main

pytest.importorskip("matplotlib")

GAUSSIAN = """
observed x[2] : real
param m[2] = 0
energy quadratic = 0.5 * sum(i in 0..2) (x[i] - m[i])^2
"""


def test_the_figure_shows_the_evaluated_metric_at_the_epochs_it_was_taken(tmp_path):
    nan = np.nan
    curve = {"loss": np.array([3.0, 2.0, 1.5, 1.2]), "score_matching_loss": np.array([nan, -0.8, nan, -1.1])}
    figure = write_history(str(tmp_path / "curve.png"), curve, "gauss, ssm")
    axis = figure.axes[0]
    (line,) = axis.lines
    np.testing.assert_array_equal(line.get_xdata(), [2, 4])
    np.testing.assert_array_equal(line.get_ydata(), [-0.8, -1.1])
    assert axis.get_ylabel() == "score-matching loss (lower is better)"
    assert axis.get_title() == "gauss, ssm: score-matching loss per epoch (on the evaluation data)"
    assert all(float(tick).is_integer() for tick in axis.get_xticks())
    assert (tmp_path / "curve.png").stat().st_size > 1000


def test_a_likelihood_comes_first_with_its_standard_errors_and_units(tmp_path):
    curve = {"loss": np.array([1.0, 0.5]), "log_likelihood": np.array([-30.0, -25.0]),
             "log_likelihood_se": np.array([0.4, 0.3]), "score_matching_loss": np.array([-1.0, -2.0])}
    axis = write_history(str(tmp_path / "curve.png"), curve).axes[0]
    assert axis.get_ylabel() == "mean log-likelihood (nats per example)"
    caps = [c for c in axis.containers if c.__class__.__name__ == "ErrorbarContainer"]
    assert len(caps) == 1  # the AIS standard errors drawn as error bars
    only_loss = write_history(str(tmp_path / "loss.png"), {"loss": np.array([1.0, 0.5, 0.2])}).axes[0]
    assert only_loss.get_ylabel() == "training loss" and "mean over the epoch's steps" in only_loss.get_title()


def test_ebm_fit_by_sliced_score_matching_writes_its_curve(tmp_path, capsys):
    (tmp_path / "gauss.ebm").write_text(GAUSSIAN)
    np.save(tmp_path / "x.npy", np.random.default_rng(0).normal(1.5, 1.0, (200, 2)))
    code = main(["fit", str(tmp_path / "gauss.ebm"), "--data", f"x={tmp_path / 'x.npy'}", "--method", "ssm",
                 "--epochs", "3", "--lr", "0.1", "--quiet", "--history", str(tmp_path / "curve.png")])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "how: sliced score matching" in printed and "score_matching_loss" in printed
    assert (tmp_path / "curve.png").stat().st_size > 1000


def test_ebm_fit_passes_the_noise_schedule_of_denoising_score_matching(tmp_path, capsys):
    (tmp_path / "gauss.ebm").write_text(GAUSSIAN)
    np.save(tmp_path / "x.npy", np.random.default_rng(1).normal(0.0, 1.0, (100, 2)))
    code = main(["fit", str(tmp_path / "gauss.ebm"), "--data", f"x={tmp_path / 'x.npy'}", "--method", "dsm",
                 "--noise", "0.5", "0.05", "--epochs", "2", "--quiet"])
    printed = capsys.readouterr()
    assert code == 0, printed.err
    assert "how: denoising score matching, noise sd 0.5 -> 0.05 (geometric)" in printed.out
    assert main(["fit", str(tmp_path / "gauss.ebm"), "--data", f"x={tmp_path / 'x.npy'}", "--method", "dsm",
                 "--noise", "-1", "--epochs", "1", "--quiet"]) != 0
    assert "noise must be a positive number" in capsys.readouterr().err


def test_ebm_fit_records_an_ais_log_likelihood_with_its_standard_error(tmp_path, capsys):
    (tmp_path / "gauss.ebm").write_text(GAUSSIAN)
    np.save(tmp_path / "x.npy", np.random.default_rng(2).normal(1.0, 1.0, (120, 2)))
    code = main(["fit", str(tmp_path / "gauss.ebm"), "--data", f"x={tmp_path / 'x.npy'}", "--method", "ssm",
                 "--epochs", "2", "--lr", "0.2", "--eval-ais", "--quiet", "--history", str(tmp_path / "curve.npz")])
    printed = capsys.readouterr().out
    assert code == 0, printed
    curve = np.load(tmp_path / "curve.npz")
    assert {"log_likelihood", "log_likelihood_se", "score_matching_loss"} <= set(curve.files)
    # N(1, I) data under a unit-variance Gaussian model: about -log(2 pi) - 1/2 |x - m|^2 per example.
    assert -4.5 < curve["log_likelihood"][-1] < -2.0 and 0 < curve["log_likelihood_se"][-1] < 0.2
