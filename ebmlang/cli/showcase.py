"""The ebmlang showcase: five small experiments that exercise the whole pipeline.

    python -m ebmlang.cli.showcase --out showcase          # `make demo`; a few minutes on 2 cores
    python -m ebmlang.cli.showcase --out /tmp/s --quick    # tiny sizes, well under a minute

1. Ising (examples/ising.ebm): block Gibbs below, at and above the critical
   temperature; lattice snapshots and |magnetisation| vs temperature against
   Onsager's exact curve.
2. Denoising (examples/denoise.ebm): a synthetic binary image with 15% of its pixels
   flipped, restored by argmin (graph cut); noisy / clean / denoised and accuracy.
3. Ring (examples/ring.ebm): MALA samples of an 8-mode ring mixture over the energy
   contours; occupancy of each mode.
4. RBM (examples/rbm.ebm, 12 hidden units): fit on binarised sklearn digits (CD-1,
   hidden units summed exactly); exact log-likelihood per epoch against an
   independent-pixel baseline, and block Gibbs samples of the visible units.
5. Composition (examples/posterior.ebm and Python `prior * likelihood`): the product of
   experts has the same MAP as the hand-written denoise.ebm.

Each section fails soft: an error is reported and the next section runs. The run
prints a summary table and writes PNGs plus `summary.json` to --out; the exit status
is 1 if any section failed.
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
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ebmlang.backends import Backend
from ebmlang.errors import EbmError

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
# 2D Ising critical temperature for J = 1 (Onsager): 2 / ln(1 + sqrt 2).
ISING_CRITICAL_T = 2.0 / math.log(1.0 + math.sqrt(2.0))
NOISE_LEVEL = 0.15


@dataclass(frozen=True)
class Sizes:
    """How big each experiment is; `QUICK` keeps the whole run to seconds."""

    ising_side: int = 32
    ising_temperatures: tuple[float, ...] = (1.6, 1.9, 2.1, 2.2, 2.3, 2.45, 2.7, 3.2)
    ising_chains: int = 8
    ising_steps: int = 400
    denoise_side: int = 64
    ring_chains: int = 64
    ring_steps: int = 1000
    rbm_examples: int = 1797
    rbm_hidden: int = 12
    rbm_epochs: int = 6
    rbm_batch: int = 32
    rbm_eval: int = 300
    rbm_sample_chains: int = 32
    rbm_sample_steps: int = 400


FULL = Sizes()
QUICK = Sizes(ising_side=12, ising_temperatures=(1.6, 2.3, 3.2), ising_chains=4, ising_steps=60,
              denoise_side=24, ring_chains=16, ring_steps=150, rbm_examples=200, rbm_hidden=8,
              rbm_epochs=2, rbm_batch=50, rbm_eval=50, rbm_sample_chains=8, rbm_sample_steps=40)


@dataclass
class SectionResult:
    """What one section did: status "ok" or "failed", time, headline numbers, files."""

    name: str
    status: str = "ok"
    seconds: float = 0.0
    numbers: dict = field(default_factory=dict)
    headline: str = ""
    files: list = field(default_factory=list)
    why: str = ""


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


def onsager_magnetisation(temperature: np.ndarray) -> np.ndarray:
    """Spontaneous magnetisation of the infinite 2D Ising model (J = 1): 0 above T_c."""
    t = np.asarray(temperature, dtype=float)
    below = t < ISING_CRITICAL_T
    m = np.zeros_like(t)
    m[below] = (1.0 - np.sinh(2.0 / t[below]) ** -4) ** 0.125
    return m


def _gradient_backend(backend: str) -> str:
    """Langevin and learning need gradients, which the numpy backend does not have."""
    return "torch" if backend in ("auto", "numpy") else backend


def _gibbs_backend(backend: str) -> str:
    """Block Gibbs and graph cuts are fastest on the numpy backend for these sizes."""
    return "numpy" if backend == "auto" else backend


# --------------------------------------------------------------------------
# Sections


def ising_section(out: Path, sizes: Sizes, backend: str, seed: int) -> SectionResult:
    from ebmlang.api.plot import plot_curves, plot_sample_grid

    result = SectionResult("Ising")
    side = sizes.ising_side
    model = load_example("ising.ebm", _gibbs_backend(backend), L=side)
    temperatures = np.asarray(sizes.ising_temperatures, dtype=float)
    magnetisation, snapshots = [], []
    # Cold start (all spins up): below T_c the chains sit in the ordered phase at once
    # instead of coarsening domains for thousands of sweeps; above T_c they melt quickly.
    init = {"s": np.ones((side, side))}
    for k, temperature in enumerate(temperatures):
        samples = model.sample(chains=sizes.ising_chains, steps=sizes.ising_steps, temperature=float(temperature),
                               burn_in=sizes.ising_steps // 3, seed=seed + k, init=init, progress=False)
        spins = samples["s"].astype(float)
        magnetisation.append(float(np.abs(spins.mean(axis=(2, 3))).mean()))
        snapshots.append(spins[0, -1])
    exact = onsager_magnetisation(temperatures)
    below = temperatures < ISING_CRITICAL_T - 0.25
    dense = np.linspace(temperatures.min(), temperatures.max(), 400)
    plot_curves(temperatures, {f"block Gibbs, {side}x{side} lattice": magnetisation},
                references={"Onsager, infinite lattice": (dense, onsager_magnetisation(dense))},
                xlabel="temperature T (J = 1)", ylabel="mean |magnetisation|",
                title="Ising: magnetisation vs temperature", vlines={"T_c": ISING_CRITICAL_T},
                path=out / "ising_magnetisation.png")
    picks = [int(np.argmin(np.abs(temperatures - t))) for t in (temperatures[0], ISING_CRITICAL_T, temperatures[-1])]
    picks = list(dict.fromkeys(picks))
    plot_sample_grid([snapshots[i] for i in picks], titles=[f"T = {temperatures[i]:.2f}" for i in picks],
                     cmap="gray", vmin=-1, vmax=1, scale=2.6,
                     suptitle=f"Ising {side}x{side}: below, near and above T_c = {ISING_CRITICAL_T:.3f}",
                     path=out / "ising_snapshots.png")
    error = float(np.max(np.abs(np.asarray(magnetisation)[below] - exact[below]))) if below.any() else float("nan")
    result.numbers = {"temperatures": temperatures.tolist(), "magnetisation": magnetisation,
                      "onsager": exact.tolist(), "max_error_below_tc": error,
                      "m_lowest_t": magnetisation[0], "m_highest_t": magnetisation[-1]}
    result.headline = (f"|m| = {magnetisation[0]:.3f} at T={temperatures[0]:g}, {magnetisation[-1]:.3f} at "
                       f"T={temperatures[-1]:g}; max |m - Onsager| below T_c = {error:.3f}")
    result.files = ["ising_magnetisation.png", "ising_snapshots.png"]
    return result


def denoise_section(out: Path, sizes: Sizes, backend: str, seed: int) -> SectionResult:
    from ebmlang.api.plot import plot_sample_grid

    result = SectionResult("Denoise")
    model = load_example("denoise.ebm", _gibbs_backend(backend), N=sizes.denoise_side)
    clean, noisy = synthetic_image(sizes.denoise_side, seed)
    found = model.argmin(observed={"y": noisy}, seed=seed)
    denoised = found["x"]
    noisy_accuracy = float(np.mean(noisy == clean))
    accuracy = float(np.mean(denoised == clean))
    plot_sample_grid([noisy, clean, denoised],
                     titles=[f"noisy ({100 * noisy_accuracy:.1f}% correct)", "clean",
                             f"denoised ({100 * accuracy:.1f}% correct)"],
                     cmap="gray", vmin=0, vmax=1, scale=2.8,
                     suptitle=f"Potts denoising by argmin ({found.method})", path=out / "denoise.png")
    result.numbers = {"noisy_accuracy": noisy_accuracy, "denoised_accuracy": accuracy,
                      "method": found.method, "energy": found.energy}
    result.headline = (f"pixel accuracy {100 * noisy_accuracy:.1f}% noisy -> {100 * accuracy:.1f}% denoised "
                       f"({found.method})")
    result.files = ["denoise.png"]
    return result


def ring_section(out: Path, sizes: Sizes, backend: str, seed: int) -> SectionResult:
    from ebmlang.api.plot import plot_scatter_contours

    result = SectionResult("Ring")
    model = load_example("ring.ebm", _gradient_backend(backend))
    samples = model.sample(chains=sizes.ring_chains, steps=sizes.ring_steps, seed=seed, progress=False)
    points = samples.flat("x")
    modes = 8
    angle = np.arctan2(points[:, 1], points[:, 0])
    nearest = np.round(angle / (2 * np.pi / modes)).astype(int) % modes
    occupancy = np.bincount(nearest, minlength=modes) / len(nearest)
    radius = float(np.mean(np.hypot(points[:, 0], points[:, 1])))
    acceptance = next(iter(samples.acceptance.values()), float("nan"))
    method = samples.plan.method_of("continuous")
    plot_scatter_contours(model, samples, "x", extent=(-6.5, 6.5, -6.5, 6.5),
                          title=f"ring: {method} samples over energy contours", path=out / "ring.png")
    result.numbers = {"occupancy": occupancy.tolist(), "modes_visited": int(np.sum(occupancy > 0)),
                      "mean_radius": radius, "acceptance": acceptance, "method": method}
    result.headline = (f"{int(np.sum(occupancy > 0))}/8 modes visited, occupancy {occupancy.min():.2f}-"
                       f"{occupancy.max():.2f} (ideal 0.125), mean radius {radius:.2f} (R = 4), "
                       f"{method} acceptance {acceptance:.2f}")
    result.files = ["ring.png"]
    return result


def rbm_section(out: Path, sizes: Sizes, backend: str, seed: int) -> SectionResult:
    from ebmlang.api.plot import plot_curves, plot_sample_grid

    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise EbmError("the RBM section needs scikit-learn for its digits",
                       hint="pip install 'ebmlang[data]'") from None
    result = SectionResult("RBM")
    images = (load_digits().data[:sizes.rbm_examples] > 7).astype(np.float64)  # 8x8 digits, 0..16 -> binary
    # A small hidden layer keeps the exact log-likelihood (a sum over 2^H hidden states)
    # cheap enough to track every epoch.
    model = load_example("rbm.ebm", _gradient_backend(backend), H=sizes.rbm_hidden)
    evaluated = {"v": images[:sizes.rbm_eval]}
    from ebmlang.learning import log_prob

    initial = float(np.mean(log_prob(model, evaluated)))
    fitted = model.fit({"v": images}, method="cd", epochs=sizes.rbm_epochs, batch_size=sizes.rbm_batch,
                       optimizer="sgd", lr=0.05, momentum=0.9, seed=seed, progress=False,
                       eval_data=evaluated)
    log_likelihood = [initial] + [record.get("log_likelihood") for record in fitted.history]
    if any(v is None for v in log_likelihood):
        raise EbmError("fit did not report the exact log-likelihood per epoch")
    # Baseline: independent pixels with their empirical frequencies (the best model without
    # interactions). An RBM that learnt anything beats it.
    freq = np.clip(images.mean(axis=0), 1e-3, 1 - 1e-3)
    v = evaluated["v"]
    baseline = float(np.mean(v @ np.log(freq) + (1 - v) @ np.log1p(-freq)))
    epochs = np.arange(len(log_likelihood))
    plot_curves(epochs, {"RBM, exact": log_likelihood, "independent pixels": [baseline] * len(epochs)},
                xlabel="epoch", ylabel="mean log-likelihood (nats / image)",
                title=f"RBM 64x{sizes.rbm_hidden} on {len(images)} binarised digits ({fitted.method.upper()})",
                path=out / "rbm_training.png")
    free = model.latent("v")
    samples = free.sample(chains=sizes.rbm_sample_chains, steps=sizes.rbm_sample_steps, seed=seed, progress=False)
    drawn = samples["v"][:, -1]
    shown = list(images[:8]) + list(drawn)
    plot_sample_grid(shown, image_shape=(8, 8), ncols=8, cmap="gray_r", vmin=0, vmax=1, scale=1.0,
                     titles=["data"] * 8 + [""] * len(drawn),
                     suptitle=f"RBM: training digits (top row); below, block Gibbs samples "
                              f"({sizes.rbm_sample_steps} sweeps)",
                     path=out / "rbm_samples.png")
    result.numbers = {"log_likelihood": log_likelihood, "baseline_log_likelihood": baseline,
                      "reconstruction_error": fitted.history[-1].get("reconstruction_error"),
                      "epochs": len(fitted.history), "method": fitted.method}
    result.headline = (f"exact log-lik {log_likelihood[0]:.2f} -> {log_likelihood[-1]:.2f} nats/image "
                       f"(independent pixels: {baseline:.2f}) in {len(fitted.history)} epochs of "
                       f"{fitted.method.upper()}")
    result.files = ["rbm_training.png", "rbm_samples.png"]
    return result


def composition_section(out: Path, sizes: Sizes, backend: str, seed: int) -> SectionResult:
    from ebmlang.api.plot import plot_sample_grid

    result = SectionResult("Composition")
    bk = _gibbs_backend(backend)
    hand_written = load_example("denoise.ebm", bk)
    side = hand_written.variables["x"].shape[0]  # prior.ebm and likelihood.ebm are written for this size
    clean, noisy = synthetic_image(side, seed + 1)
    reference = hand_written.argmin(observed={"y": noisy}, seed=seed)
    posterior = load_example("posterior.ebm", bk, model="Posterior")
    sharper = load_example("posterior.ebm", bk, model="Sharper")
    product = load_example("prior.ebm", bk) * load_example("likelihood.ebm", bk)
    maps = {name: m.argmin(observed={"y": noisy}, seed=seed)
            for name, m in (("posterior.ebm", posterior), ("prior * likelihood", product), ("Sharper", sharper))}
    agreement = {name: float(np.mean(r["x"] == reference["x"])) for name, r in maps.items()}
    energy_gap = {name: abs(r.energy - reference.energy) for name, r in maps.items()}
    plot_sample_grid([noisy, reference["x"], maps["posterior.ebm"]["x"], maps["prior * likelihood"]["x"],
                      maps["Sharper"]["x"]],
                     titles=["noisy y", "denoise.ebm MAP", "Prior * Likelihood", "Python prior * lik",
                             "Prior^2 * Likelihood"],
                     cmap="gray", vmin=0, vmax=1, scale=2.2, suptitle="Products of experts: same MAP as denoise.ebm",
                     path=out / "composition.png")
    same = agreement["posterior.ebm"] == 1.0 and agreement["prior * likelihood"] == 1.0
    result.numbers = {"agreement": agreement, "energy_gap": energy_gap, "reference_energy": reference.energy,
                      "sharper_accuracy": float(np.mean(maps["Sharper"]["x"] == clean)),
                      "accuracy": float(np.mean(reference["x"] == clean))}
    result.headline = (f"MAP of Prior*Likelihood {'==' if same else '!='} denoise.ebm MAP "
                       f"(agreement {agreement['posterior.ebm']:.4f} / {agreement['prior * likelihood']:.4f}, "
                       f"energy gap {max(energy_gap['posterior.ebm'], energy_gap['prior * likelihood']):.2g})")
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
)


# --------------------------------------------------------------------------
# Running


def run_showcase(out: str | Path, *, quick: bool = False, backend: str = "auto", seed: int = 0,
                 only: tuple[str, ...] | None = None, echo: Callable[[str], None] = print) -> list[SectionResult]:
    """Run the sections (all, or those named in `only`), writing PNGs and summary.json to `out`.

    A failing section is recorded with the reason and the run goes on.
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
            result = section(out, sizes, backend, seed)
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
    """`python -m ebmlang.cli.showcase [--out DIR] [--quick] [--backend B] [--only SECTION ...]`."""
    parser = argparse.ArgumentParser(prog="python -m ebmlang.cli.showcase",
                                     description="Run the ebmlang showcase and write its figures.")
    parser.add_argument("--out", default="showcase", help="output folder (default: showcase)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes (seconds), for tests")
    parser.add_argument("--backend", choices=("auto", "torch", "jax", "numpy"), default="auto",
                        help="backend for every section (default: the fastest per section)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", nargs="+", metavar="SECTION", choices=[n for n, _ in SECTIONS],
                        help="run only these sections")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    results = run_showcase(args.out, quick=args.quick, backend=args.backend, seed=args.seed,
                           only=tuple(args.only) if args.only else None)
    print_summary(results, Path(args.out))
    print(f"showcase finished in {time.perf_counter() - started:.1f} s")
    return 0 if all(r.status == "ok" for r in results) else 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
