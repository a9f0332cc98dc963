"""The ebmlang showcase: small experiments that exercise the whole pipeline.

    python -m ebmlang.cli.showcase --out showcase          # `make demo`; well under a minute on 2 cores
    python -m ebmlang.cli.showcase --out /tmp/s --quick    # tiny sizes, seconds

1. Ising (examples/ising.ebm): block Gibbs from below to above the critical
   temperature; mean |magnetisation| with standard errors over independent chains
   against Onsager's exact curve, and lattice snapshots below, near and above T_c.
2. Denoising (examples/denoise.ebm): a synthetic binary image with 15% of its pixels
   flipped, restored by argmin (graph cut); noisy / clean / denoised with pixel accuracy.
3. Ring (examples/ring.ebm): NUTS samples (the plan's choice) of an 8-mode ring
   mixture over the energy contours; occupancy of each mode.
4. RBM (examples/rbm.ebm, 12 hidden units): fit on binarised sklearn digits (CD-1),
   with the last images held out as a test set; exact log-likelihood of the training
   and test sets per epoch against an independent-pixel baseline, and block Gibbs
   samples of the visible units.
5. Composition (examples/posterior.ebm and Python `prior * likelihood`): on the
   denoising section's noisy image, the product of experts has the same MAP as the
   hand-written denoise.ebm; a sharper prior (Prior^2) is shown beside it.
6. JEM (examples/digits_jem.ebm, showcase_neural.py): a digits classifier trained as a
   joint energy against the same network trained by `nll`: test accuracy, how well each
   model's free energy tells held-out digits from noise, and class-conditional samples
   judged by an independent classifier (logistic regression on the real digits).
7. Conv EBM (examples/digits_conv.ebm and its trained weights): samples, and the bottom
   half of held-out digits filled in by conditional sampling, judged by the same kind of
   independent classifier against the complete digits and a mean-digit fill.

Each section fails soft: an error is reported and the next section runs. Sections
that take more than a few seconds report progress (a bar on a terminal, a line every
few seconds in a log; see showcase_progress.py). The run prints a summary table and
writes PNGs plus `summary.json` to --out; the exit status is 1 if any section failed.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import re
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ebmlang.backends import Backend
from ebmlang.cli import showcase_neural
from ebmlang.cli.showcase_common import EXAMPLES, FIGURE_WIDTH, SectionResult, gradient_backend
from ebmlang.cli.showcase_progress import LOG_EVERY_S, PROGRESS_MODES, SectionProgress
from ebmlang.errors import EbmError

# 2D Ising critical temperature for J = 1 (Onsager): 2 / ln(1 + sqrt 2).
ISING_CRITICAL_T = 2.0 / math.log(1.0 + math.sqrt(2.0))
NOISE_LEVEL = 0.15
CURVE_SIZE = (FIGURE_WIDTH, 4.5)
CONTOUR_SIZE = (FIGURE_WIDTH, 6.0)


@dataclass(frozen=True)
class Sizes:
    """How big each experiment is; `QUICK` keeps the whole run to seconds."""

    ising_side: int = 32
    ising_temperatures: tuple[float, ...] = (1.6, 1.9, 2.1, 2.2, 2.27, 2.35, 2.45, 2.7, 3.2)
    ising_chains: int = 16  # independent chains: their spread gives the error bars
    ising_steps: int = 1000
    ring_chains: int = 64
    ring_steps: int = 1000
    rbm_examples: int = 1797
    rbm_test: int = 300  # the last digits, held out of training
    rbm_hidden: int = 12
    rbm_epochs: int = 15
    rbm_batch: int = 32
    rbm_sample_chains: int = 32
    rbm_sample_steps: int = 400
    jem_examples: int = 1797  # at most: the training split has 1,257
    jem_epochs: int = 8
    jem_samples_per_class: int = 4
    jem_sample_steps: int = 100
    conv_samples: int = 64
    conv_test: int = 450
    conv_draws: int = 16


FULL = Sizes()
QUICK = Sizes(ising_side=12, ising_temperatures=(1.6, 2.3, 3.2), ising_chains=4, ising_steps=60,
              ring_chains=16, ring_steps=150, rbm_examples=200, rbm_test=50, rbm_hidden=8,
              rbm_epochs=2, rbm_batch=50, rbm_sample_chains=8, rbm_sample_steps=40,
              jem_examples=600, jem_epochs=2, jem_samples_per_class=1, jem_sample_steps=20,
              conv_samples=16, conv_test=40, conv_draws=4)


# --------------------------------------------------------------------------
# Helpers


def load_example(file: str, backend: str | Backend, *, model: str | None = None, **consts):
    """An example model, with some of its `const` declarations set to other values.

    The constants are replaced in the source text, so the model is compiled exactly as
    if the file said so (e.g. `L=16` for a smaller Ising lattice).
    """
    from ebmlang.api.model import load, loads

    path = EXAMPLES / file
    if not consts:
        return load(path, backend=backend, model=model)
    text = path.read_text(encoding="utf-8")
    for name, value in consts.items():
        pattern = re.compile(rf"^(\s*const\s+{re.escape(name)}\s*=\s*)[^#\n]+", re.MULTILINE)
        text, count = pattern.subn(lambda m: f"{m.group(1)}{value}", text, count=1)
        if count != 1:
            raise EbmError(f"{file} has no `const {name} = ...` to set")
    return loads(text, backend=backend, model=model, name=str(path))


def synthetic_image(side: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A clean binary image (a disc and a rectangle) and a copy with NOISE_LEVEL of its pixels flipped."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:side, 0:side] / side
    disc = (yy - 0.38) ** 2 + (xx - 0.34) ** 2 < 0.22 ** 2
    box = (yy > 0.6) & (yy < 0.9) & (xx > 0.48) & (xx < 0.88)
    clean = (disc | box).astype(np.int64)
    flips = rng.random(clean.shape) < NOISE_LEVEL
    return clean, np.where(flips, 1 - clean, clean)


def denoising_problem(backend: str, seed: int):
    """denoise.ebm and the image both denoising sections use: (model, clean, noisy).

    The image has denoise.ebm's size, which prior.ebm and likelihood.ebm share, so the
    composition section compares its products of experts on the very image (same size,
    same seed) that the denoising figure shows.
    """
    model = load_example("denoise.ebm", backend)
    clean, noisy = synthetic_image(model.variables["x"].shape[0], seed)
    return model, clean, noisy


def onsager_magnetisation(temperature: np.ndarray) -> np.ndarray:
    """Spontaneous magnetisation of the infinite 2D Ising model (J = 1): 0 above T_c."""
    t = np.asarray(temperature, dtype=float)
    below = t < ISING_CRITICAL_T
    m = np.zeros_like(t)
    m[below] = (1.0 - np.sinh(2.0 / t[below]) ** -4) ** 0.125
    return m


def _gibbs_backend(backend: str) -> str:
    """Block Gibbs and graph cuts are fastest on the numpy backend for these sizes."""
    return "numpy" if backend == "auto" else backend


# --------------------------------------------------------------------------
# Sections


def ising_section(out: Path, sizes: Sizes, backend: str, seed: int, progress: SectionProgress) -> SectionResult:
    from ebmlang.api.plot import plot_curves, plot_sample_grid

    result = SectionResult("Ising")
    side, chains = sizes.ising_side, sizes.ising_chains
    model = load_example("ising.ebm", _gibbs_backend(backend), L=side)
    temperatures = np.asarray(sizes.ising_temperatures, dtype=float)
    magnetisation, standard_error, snapshots = [], [], []
    # Cold start (all spins up): below T_c the chains sit in the ordered phase at once
    # instead of coarsening domains for thousands of sweeps; above T_c they melt quickly.
    init = {"s": np.ones((side, side))}
    progress.update(0, len(temperatures))  # a bar from the start, not after the first temperature
    for k, temperature in enumerate(temperatures):
        samples = model.sample(chains=chains, steps=sizes.ising_steps, temperature=float(temperature),
                               burn_in=sizes.ising_steps // 3, seed=seed + k, init=init, progress=False)
        spins = samples["s"].astype(float)
        # One average of |m| per chain: draws within a chain are correlated, but the chains
        # are independent, so the spread of their averages gives an honest standard error.
        per_chain = np.abs(spins.mean(axis=(2, 3))).mean(axis=1)
        magnetisation.append(float(per_chain.mean()))
        standard_error.append(float(per_chain.std(ddof=1) / math.sqrt(chains)))
        snapshots.append(spins[0, -1])
        progress.update(k + 1, len(temperatures), f"T = {temperature:.2f}")
    exact = onsager_magnetisation(temperatures)
    below = temperatures < ISING_CRITICAL_T - 0.25
    dense = np.linspace(temperatures.min(), temperatures.max(), 400)
    measured = f"block Gibbs, {side}x{side} lattice: mean ± s.e. over {chains} chains"
    plot_curves(temperatures, {measured: magnetisation}, errors={measured: standard_error},
                references={"Onsager, infinite lattice (exact)": (dense, onsager_magnetisation(dense))},
                xlabel="temperature T (J = 1)", ylabel="mean |magnetisation| per spin",
                title=f"Ising {side}x{side}: mean |magnetisation| vs temperature ({sizes.ising_steps} sweeps a chain)",
                vlines={"T_c": ISING_CRITICAL_T}, size=CURVE_SIZE, path=out / "ising_magnetisation.png")
    picks = [int(np.argmin(np.abs(temperatures - t))) for t in (temperatures[0], ISING_CRITICAL_T, temperatures[-1])]
    picks = list(dict.fromkeys(picks))
    phase = ["below T_c", "near T_c", "above T_c"] if len(picks) == 3 else [""] * len(picks)
    plot_sample_grid([snapshots[i] for i in picks],
                     titles=[f"T = {temperatures[i]:.2f} {where}".rstrip() for i, where in zip(picks, phase)],
                     cmap="gray", colorbar={-1: "spin -1", 1: "spin +1"}, width=FIGURE_WIDTH,
                     suptitle=f"Ising {side}x{side}: one chain's lattice after {sizes.ising_steps} sweeps "
                              f"(T_c = {ISING_CRITICAL_T:.3f})",
                     path=out / "ising_snapshots.png")
    error = float(np.max(np.abs(np.asarray(magnetisation)[below] - exact[below]))) if below.any() else float("nan")
    result.numbers = {"temperatures": temperatures.tolist(), "magnetisation": magnetisation,
                      "standard_error": standard_error, "chains": chains,
                      "onsager": exact.tolist(), "max_error_below_tc": error,
                      "m_lowest_t": magnetisation[0], "m_highest_t": magnetisation[-1]}
    result.headline = (f"|m| = {magnetisation[0]:.3f} at T={temperatures[0]:g}, {magnetisation[-1]:.3f} at "
                       f"T={temperatures[-1]:g}; max |m - Onsager| below T_c = {error:.2g}")
    result.files = ["ising_magnetisation.png", "ising_snapshots.png"]
    return result


# The denoising figures' colour key: label 1 is the foreground (white in gray).
LABEL_KEY = {0: "label 0", 1: "label 1"}
ACCURACY_NOTE = "accuracy = share of pixels equal to the clean image"


def denoise_section(out: Path, sizes: Sizes, backend: str, seed: int, progress: SectionProgress) -> SectionResult:
    from ebmlang.api.plot import plot_sample_grid

    result = SectionResult("Denoise")
    model, clean, noisy = denoising_problem(_gibbs_backend(backend), seed)
    found = model.argmin(observed={"y": noisy}, seed=seed)
    denoised = found["x"]
    noisy_accuracy = float(np.mean(noisy == clean))
    accuracy = float(np.mean(denoised == clean))
    side = clean.shape[0]
    plot_sample_grid([noisy, clean, denoised],
                     titles=[f"noisy y\naccuracy {100 * noisy_accuracy:.1f}%", "clean\n(ground truth)",
                             f"denoised: MAP of denoise.ebm\naccuracy {100 * accuracy:.1f}%"],
                     cmap="gray", colorbar=LABEL_KEY, width=FIGURE_WIDTH,
                     suptitle=f"Potts denoising of a {side}x{side} image with {100 * NOISE_LEVEL:.0f}% of pixels "
                              f"flipped, by argmin ({found.method})\n{ACCURACY_NOTE}",
                     path=out / "denoise.png")
    result.numbers = {"noisy_accuracy": noisy_accuracy, "denoised_accuracy": accuracy,
                      "method": found.method, "energy": found.energy, "image_seed": seed}
    result.headline = (f"pixel accuracy {100 * noisy_accuracy:.1f}% noisy -> {100 * accuracy:.1f}% denoised "
                       f"({found.method})")
    result.files = ["denoise.png"]
    return result


def ring_section(out: Path, sizes: Sizes, backend: str, seed: int, progress: SectionProgress) -> SectionResult:
    from ebmlang.api.plot import plot_scatter_contours

    result = SectionResult("Ring")
    model = load_example("ring.ebm", gradient_backend(backend))
    samples = model.sample(chains=sizes.ring_chains, steps=sizes.ring_steps, seed=seed, progress=False)
    points = samples.flat("x")
    modes = 8
    angle = np.arctan2(points[:, 1], points[:, 0])
    nearest = np.round(angle / (2 * np.pi / modes)).astype(int) % modes
    occupancy = np.bincount(nearest, minlength=modes) / len(nearest)
    radius = float(np.mean(np.hypot(points[:, 0], points[:, 1])))
    acceptance = next(iter(samples.acceptance.values()), float("nan"))
    method = samples.plan.method_of("continuous")
    plot_scatter_contours(model, samples, "x", extent=(-6.5, 6.5, -6.5, 6.5), size=CONTOUR_SIZE,
                          title=f"ring of 8 Gaussians: {method.upper()} samples ({sizes.ring_chains} chains) "
                                f"over the energy contours", path=out / "ring.png")
    result.numbers = {"occupancy": occupancy.tolist(), "modes_visited": int(np.sum(occupancy > 0)),
                      "mean_radius": radius, "acceptance": acceptance, "method": method}
    result.headline = (f"{int(np.sum(occupancy > 0))}/8 modes visited, occupancy {occupancy.min():.2f}-"
                       f"{occupancy.max():.2f} (ideal 0.125), mean radius {radius:.2f} (R = 4), "
                       f"{method} acceptance {acceptance:.2f}")
    result.files = ["ring.png"]
    return result


def rbm_section(out: Path, sizes: Sizes, backend: str, seed: int, progress: SectionProgress) -> SectionResult:
    from ebmlang.api.plot import plot_curves, plot_sample_grid

    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise EbmError("the RBM section needs scikit-learn for its digits",
                       hint="pip install 'ebmlang[data]'") from None
    result = SectionResult("RBM")
    digits = (load_digits().data[:sizes.rbm_examples] > 7).astype(np.float64)  # 8x8 digits, 0..16 -> binary
    # The digits cycle through the classes, so the last ones are a fair held-out test set.
    train, test = digits[:-sizes.rbm_test], digits[-sizes.rbm_test:]
    # A small hidden layer keeps the exact log-likelihood (a sum over 2^H hidden states)
    # cheap enough to track on both sets every epoch.
    model = load_example("rbm.ebm", gradient_backend(backend), H=sizes.rbm_hidden)

    def mean_log_likelihood() -> tuple[float, float]:
        return float(np.mean(model.log_prob({"v": train}))), float(np.mean(model.log_prob({"v": test})))

    curve = [mean_log_likelihood()]
    steps = sizes.rbm_epochs + 1  # the epochs, then sampling
    progress.update(0, steps, f"epoch 0, test log-lik {curve[0][1]:.2f}")

    def after_epoch(_model, record) -> None:
        curve.append(mean_log_likelihood())
        progress.update(record["epoch"], steps, f"epoch {record['epoch']}, test log-lik {curve[-1][1]:.2f}")

    fitted = model.fit({"v": train}, method="cd", epochs=sizes.rbm_epochs, batch_size=sizes.rbm_batch,
                       optimizer="sgd", lr=0.05, momentum=0.9, seed=seed, progress=False, eval_every=0,
                       callback=after_epoch)
    train_ll, test_ll = (list(values) for values in zip(*curve))
    # Baseline: independent pixels with their training-set frequencies (the best model
    # without interactions), scored on the same two sets. An RBM that learnt anything beats it.
    freq = np.clip(train.mean(axis=0), 1e-3, 1 - 1e-3)
    baseline = {name: float(np.mean(v @ np.log(freq) + (1 - v) @ np.log1p(-freq)))
                for name, v in (("train", train), ("test", test))}
    epochs = np.arange(len(curve))
    labels = {"train": f"RBM, training set ({len(train)} images)", "test": f"RBM, test set ({len(test)} images)",
              "base_train": "independent pixels, training set", "base_test": "independent pixels, test set"}
    plot_curves(epochs, {labels["train"]: train_ll, labels["test"]: test_ll,
                         labels["base_train"]: [baseline["train"]] * len(epochs),
                         labels["base_test"]: [baseline["test"]] * len(epochs)},
                styles={labels["train"]: {"color": "C0"}, labels["test"]: {"color": "C1"},
                        labels["base_train"]: {"color": "C0", "ls": "--", "marker": ""},
                        labels["base_test"]: {"color": "C1", "ls": "--", "marker": ""}},
                xlabel=f"epoch of {fitted.method.upper()}-1 training", ylabel="mean log-likelihood (nats / image)",
                title=f"RBM 64x{sizes.rbm_hidden} on binarised digits: exact log-likelihood of the training "
                      f"and test sets", size=CURVE_SIZE, path=out / "rbm_training.png")
    free = model.latent("v")
    samples = free.sample(chains=sizes.rbm_sample_chains, steps=sizes.rbm_sample_steps, seed=seed, progress=False)
    progress.update(steps, steps, "sampling")
    drawn = samples["v"][:, -1]
    plot_sample_grid(list(train[:8]) + list(drawn), image_shape=(8, 8), ncols=8, cmap="gray_r",
                     colorbar={0: "pixel off", 1: "pixel on"}, width=FIGURE_WIDTH,
                     titles=["training"] * 8 + ["sample"] * len(drawn),
                     suptitle=f"RBM 64x{sizes.rbm_hidden}: training digits (top row) and samples of the model\n"
                              f"(last state of {len(drawn)} block Gibbs chains after {sizes.rbm_sample_steps} sweeps)",
                     path=out / "rbm_samples.png")
    result.numbers = {"train_log_likelihood": train_ll, "test_log_likelihood": test_ll,
                      "baseline_train_log_likelihood": baseline["train"],
                      "baseline_test_log_likelihood": baseline["test"],
                      "train_images": len(train), "test_images": len(test),
                      "reconstruction_error": fitted.history[-1].get("reconstruction_error"),
                      "epochs": len(fitted.history), "method": fitted.method}
    result.headline = (f"exact test-set log-lik {test_ll[0]:.2f} -> {test_ll[-1]:.2f} nats/image (training set "
                       f"{train_ll[-1]:.2f}; independent pixels {baseline['test']:.2f} on the test set) after "
                       f"{len(fitted.history)} epochs of {fitted.method.upper()}")
    result.files = ["rbm_training.png", "rbm_samples.png"]
    return result


def composition_section(out: Path, sizes: Sizes, backend: str, seed: int,
                        progress: SectionProgress) -> SectionResult:
    from ebmlang.api.plot import plot_sample_grid

    result = SectionResult("Composition")
    bk = _gibbs_backend(backend)
    hand_written, clean, noisy = denoising_problem(bk, seed)
    models = {"denoise.ebm": hand_written,
              "posterior.ebm": load_example("posterior.ebm", bk, model="Posterior"),
              "prior * likelihood": load_example("prior.ebm", bk) * load_example("likelihood.ebm", bk),
              "Sharper": load_example("posterior.ebm", bk, model="Sharper")}
    maps = {name: m.argmin(observed={"y": noisy}, seed=seed) for name, m in models.items()}
    reference = maps["denoise.ebm"]["x"]
    agreement = {name: float(np.mean(r["x"] == reference)) for name, r in maps.items() if name != "denoise.ebm"}
    accuracy = {name: float(np.mean(r["x"] == clean)) for name, r in maps.items()}
    noisy_accuracy = float(np.mean(noisy == clean))
    titles = [f"noisy y (as in denoise.png)\naccuracy {100 * noisy_accuracy:.1f}%", "clean\n(ground truth)",
              f"denoise.ebm MAP\naccuracy {100 * accuracy['denoise.ebm']:.1f}%",
              f"posterior.ebm: Prior * Likelihood\naccuracy {100 * accuracy['posterior.ebm']:.1f}%",
              f"Python: prior * likelihood\naccuracy {100 * accuracy['prior * likelihood']:.1f}%",
              f"Sharper: Prior^2 * Likelihood\naccuracy {100 * accuracy['Sharper']:.1f}%"]
    plot_sample_grid([noisy, clean] + [maps[name]["x"] for name in models], ncols=3, titles=titles,
                     cmap="gray", colorbar=LABEL_KEY, width=FIGURE_WIDTH,
                     suptitle=f"Products of experts: MAP by argmin on the denoising image\n{ACCURACY_NOTE}",
                     path=out / "composition.png")
    same = agreement["posterior.ebm"] == 1.0 and agreement["prior * likelihood"] == 1.0
    # The three equivalent models are one energy function written three ways, so their
    # minima must have the same energy too; Sharper weights its prior twice, so its energy
    # is on another scale and is left out.
    map_energy = {name: float(maps[name].energy) for name in ("denoise.ebm", "posterior.ebm", "prior * likelihood")}
    result.numbers = {"agreement": agreement, "accuracy": accuracy, "noisy_accuracy": noisy_accuracy,
                      "map_energy": map_energy, "image_seed": seed}
    result.headline = (f"MAP of Prior*Likelihood {'==' if same else '!='} denoise.ebm MAP "
                       f"(agreement {agreement['posterior.ebm']:.4f} / {agreement['prior * likelihood']:.4f}, "
                       f"energy {map_energy['denoise.ebm']:.1f}); accuracy {100 * accuracy['denoise.ebm']:.1f}%, "
                       f"Prior^2*Likelihood {100 * accuracy['Sharper']:.1f}%")
    if not same:
        result.status = "failed"
        result.why = "the composed model's MAP differs from the hand-written model's"
    result.files = ["composition.png"]
    return result


SECTIONS: tuple[tuple[str, Callable[..., SectionResult]], ...] = (
    ("Ising", ising_section),
    ("Denoise", denoise_section),
    ("Ring", ring_section),
    ("RBM", rbm_section),
    ("Composition", composition_section),
    ("JEM", showcase_neural.jem_section),
    ("Conv EBM", showcase_neural.conv_section),
)


# --------------------------------------------------------------------------
# Running


def run_showcase(out: str | Path, *, quick: bool = False, backend: str = "auto", seed: int = 0,
                 only: tuple[str, ...] | None = None, echo: Callable[[str], None] = print,
                 progress: str = "auto", progress_every_s: float = LOG_EVERY_S) -> list[SectionResult]:
    """Run the sections (all, or those named in `only`), writing PNGs and summary.json to `out`.

    A failing section is recorded with the reason and the run goes on. progress: "auto"
    (a bar on a terminal, else a line through `echo` at most every `progress_every_s`
    seconds), "bar", "log" or "off".
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    sizes = QUICK if quick else FULL
    results = []
    for name, section in SECTIONS:
        if only and name.lower() not in {o.lower() for o in only}:
            continue
        echo(f"[{name}] running ...")
        started = time.perf_counter()
        try:
            with SectionProgress(name, progress, echo=echo, every_s=progress_every_s) as reporter:
                result = section(out, sizes, backend, seed, reporter)
        except Exception as exc:  # noqa: BLE001 -- fail soft: report the section and carry on
            result = SectionResult(name, status="failed", why=_reason(exc))
            echo(f"[{name}] FAILED: {result.why}")
        result.seconds = time.perf_counter() - started
        if result.status == "ok":
            echo(f"[{name}] {result.headline} ({result.seconds:.1f} s)")
        results.append(result)
    summary = {"quick": quick, "backend": backend, "seed": seed,
               "sections": [dataclasses.asdict(r) for r in results]}
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=_jsonable))
    return results


def _reason(exc: BaseException) -> str:
    if isinstance(exc, EbmError):
        return str(exc)
    frame = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
    where = f" (at {Path(frame.filename).name}:{frame.lineno})" if frame else ""
    return f"{type(exc).__name__}: {exc}{where}"


def _jsonable(value):
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


def print_summary(results: list[SectionResult], out: Path) -> None:
    """A rich table: section, status, seconds, headline (or why it failed)."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"ebmlang showcase -> {out}")
    table.add_column("section")
    table.add_column("status")
    table.add_column("time", justify="right")
    table.add_column("result")
    for r in results:
        status = "[green]ok[/green]" if r.status == "ok" else "[red]failed[/red]"
        text = r.headline if r.status == "ok" else r.why.splitlines()[0] if r.why else ""
        table.add_row(r.name, status, f"{r.seconds:.1f} s", text)
    table.caption = f"total {sum(r.seconds for r in results):.1f} s; PNGs and summary.json in {out}"
    Console().print(table)


def main(argv: list[str] | None = None) -> int:
    """`python -m ebmlang.cli.showcase [--out DIR] [--quick] [--backend B] [--only SECTION ...] [--progress P]`."""
    parser = argparse.ArgumentParser(prog="python -m ebmlang.cli.showcase",
                                     description="Run the ebmlang showcase and write its figures.")
    parser.add_argument("--out", default="showcase", help="output folder (default: showcase)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes (seconds), for tests")
    parser.add_argument("--backend", choices=("auto", "torch", "jax", "numpy"), default="auto",
                        help="backend for every section (default: the fastest per section)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", nargs="+", metavar="SECTION", choices=[n for n, _ in SECTIONS],
                        help="run only these sections")
    parser.add_argument("--progress", choices=PROGRESS_MODES, default="auto",
                        help="progress of long sections: a bar, a log line every few seconds, or off "
                             "(default auto: a bar on a terminal, else log lines)")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    results = run_showcase(args.out, quick=args.quick, backend=args.backend, seed=args.seed,
                           only=tuple(args.only) if args.only else None, progress=args.progress)
    print_summary(results, Path(args.out))
    print(f"showcase finished in {time.perf_counter() - started:.1f} s")
    return 0 if all(r.status == "ok" for r in results) else 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
