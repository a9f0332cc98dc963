"""Convergence diagnostics of a sampling run: R-hat, bulk and tail ESS, divergences.

ArviZ does the maths (rank-normalised split R-hat and ESS, Vehtari et al. 2021); this
module reduces its per-element numbers to one row per variable (R-hat max, ESS mins),
names the ArviZ dimensions after the `.ebm` declaration, and says what to do when a
chain has not mixed.
"""
from __future__ import annotations

import re
import warnings
from dataclasses import asdict, dataclass, field

import numpy as np

# Thresholds of Vehtari, Gelman, Simpson, Carpenter & Buerkner (2021), "Rank-normalization,
# folding, and localization: an improved R-hat for assessing convergence of MCMC",
# Bayesian Analysis 16(2), section 4: use the samples only if R-hat < 1.01 and the bulk
# and tail ESS are above 400 with four chains -- 100 per chain. ArviZ's `rhat` and `ess`
# docstrings cite the same numbers.
RHAT_THRESHOLD = 1.01
ESS_PER_CHAIN = 100
# Those thresholds are per quantity: over the elements of a large array some pass them by
# chance (the largest of 1024 R-hats of well-mixed spins is about 1.02). An array is flagged
# when more than this share of its elements fail, or when one R-hat shows chains stuck apart.
FLAGGED_SHARE = 0.05
STUCK_RHAT = 1.1
# ArviZ's rank-normalised ESS runs an FFT per element: above this many elements a variable is
# diagnosed on evenly spaced elements only, so a 512 x 512 image does not take minutes.
MAX_DIAGNOSED_ELEMENTS = 4096
_IDENTIFIER = re.compile(r"[A-Za-z_]\w*")


class ConvergenceWarning(UserWarning):
    """The chains of a sampling run disagree (R-hat) or hold few independent draws (ESS)."""


@dataclass(frozen=True)
class VariableSummary:
    """One variable's draws, pooled over chains, draws and elements. `rhat` is the largest
    over the elements, `ess_bulk` and `ess_tail` the smallest; NaN where every element is
    constant (ArviZ cannot tell then). `diagnosed` elements of `size` entered them."""

    name: str
    shape: tuple[int, ...]
    mean: float
    sd: float
    rhat: float
    ess_bulk: float
    ess_tail: float
    diagnosed: int
    size: int
    rhat_failing: float = 0.0  # share of the diagnosed elements above RHAT_THRESHOLD
    ess_failing: float = 0.0  # share below the ESS threshold (bulk or tail)


@dataclass(frozen=True)
class SampleSummary:
    """`Samples.summary()`: a row per variable and for the energy (and its mean in the last
    draw); the divergent transitions after warm-up (where the draws were kept), in all and
    per chain in all (None when the sampler does not count them); the convergence problems
    found; and the acceptance rates and plan `str()` shows."""

    num_chains: int
    num_draws: int
    variables: dict[str, VariableSummary]
    energy: VariableSummary
    energy_last: float
    divergences: int | None
    divergences_in_all: int | None
    divergences_per_chain: tuple[int, ...] | None
    problems: tuple[str, ...]
    acceptance: dict = field(default_factory=dict)
    plan: str = ""
    tempering: str = ""  # the ladder and swap acceptance of a replica exchange run

    def to_dict(self) -> dict:
        """Plain dicts per variable (and "energy"): mean, sd, rhat, ess_bulk, ess_tail, ..."""
        rows = {name: asdict(row) for name, row in self.variables.items()}
        rows["energy"] = asdict(self.energy)
        return rows

    def lines(self) -> list[str]:
        out = [f"Samples: {self.num_chains} chains x {self.num_draws} draws"]
        for row in self.variables.values():
            out.append(f"  {row.name}: shape {list(row.shape)}, mean {row.mean:.4g}, sd {row.sd:.4g}, "
                       + diagnostics_text(row))
        out.append(f"  energy: mean {self.energy.mean:.6g} (last draw {self.energy_last:.6g}), "
                   + diagnostics_text(self.energy))
        if self.divergences_in_all:  # none counted, or none at all: nothing to say
            out.append(f"  divergences: {self.divergences} after warm-up ({self.divergences_in_all} in all)")
        out.extend(f"  acceptance[{k}]: {v:.3f}" for k, v in self.acceptance.items())
        if self.tempering:
            out.append(f"  tempering: {self.tempering}")
        if self.plan:
            out.append("  " + self.plan.replace("\n", "\n  "))
        return out

    def __str__(self) -> str:
        return "\n".join(self.lines())


def diagnostics_text(row: VariableSummary) -> str:
    """`R-hat max 1.002, ESS bulk min 812 / tail min 640` ("max"/"min" only for arrays)."""
    many = row.size > 1
    text = (f"R-hat{' max' if many else ''} {rhat_text(row.rhat)}, ESS bulk{' min' if many else ''} "
            f"{row.ess_bulk:.0f} / tail{' min' if many else ''} {row.ess_tail:.0f}")
    if row.diagnosed < row.size:
        text += f" (on {row.diagnosed} of {row.size} elements)"
    return text


def rhat_text(rhat: float) -> str:
    # Chains stuck apart (an element constant within each chain) give R-hat in the 1e15s.
    return f"{rhat:.3f}" if not rhat >= 10 else f"{rhat:.3g}"


def summarise(draws: dict, energy: np.ndarray, info: dict, acceptance: dict | None = None,
              plan: str = "") -> SampleSummary:
    """Diagnose draws {name: [chains, draws, *shape]} and the energy trace [chains, draws]."""
    energy = np.asarray(energy)
    chains = int(energy.shape[0])
    rows = {name: _row(name, np.asarray(arr)) for name, arr in draws.items()}
    energy_row = _row("energy", energy)
    divergences = _divergences(info)
    problems = convergence_problems([*rows.values(), energy_row], chains, divergences[0])
    tempering, swap_problems = _tempering(info.get("tempering"))
    return SampleSummary(chains, int(energy.shape[1]), rows, energy_row, float(np.mean(energy[:, -1])),
                         *divergences, tuple(problems + swap_problems), dict(acceptance or {}), plan, tempering)


# Below this mean swap acceptance between two neighbouring temperatures, replicas barely exchange.
LOW_SWAP_ACCEPTANCE = 0.05


def _tempering(info: dict | None) -> tuple[str, list[str]]:
    """The line of a replica exchange run (its ladder, swap acceptance per neighbouring pair
    and round trips), and a problem where a pair barely swaps; ("", []) for other runs."""
    if not info:
        return "", []
    temps, swaps = info["temperatures"], info["swap_acceptance"]
    line = (f"T = {', '.join(f'{t:.3g}' for t in temps)}; swap acceptance "
            f"{', '.join(f'{a:.2f}' for a in swaps)}; {info['round_trips']} round trips")
    problems = [f"replica exchange: swaps between T = {temps[i]:.3g} and {temps[i + 1]:.3g} are accepted "
                f"{a:.1%} of the time, so states barely cross there; add replicas (tempering=...) or "
                "narrow the ladder" for i, a in enumerate(swaps) if a < LOW_SWAP_ACCEPTANCE]
    return line, problems


def warn_problems(summary: SampleSummary) -> None:
    for problem in summary.problems:
        warnings.warn(problem, ConvergenceWarning, stacklevel=3)


def convergence_problems(rows, chains: int, divergences: int | None) -> list[str]:
    """One sentence per variable (or the energy) that fails a threshold: what and what to do."""
    minimum_ess = ESS_PER_CHAIN * chains
    problems = []
    for row in rows:
        where = "the energy" if row.name == "energy" else f"'{row.name}'"
        share = f" on {row.rhat_failing:.0%} of its elements" if row.size > 1 else ""
        if row.rhat > STUCK_RHAT or row.rhat_failing > FLAGGED_SHARE:
            problems.append(f"{where}: R-hat {rhat_text(row.rhat)} > {RHAT_THRESHOLD}{share}: the chains disagree; "
                            "run more steps, or another method (--method) if chains stay in different modes")
        low = min(row.ess_bulk, row.ess_tail)
        if row.ess_failing > FLAGGED_SHARE:
            share = f" on {row.ess_failing:.0%} of its elements" if row.size > 1 else ""
            problems.append(f"{where}: ESS {low:.0f} < {minimum_ess} ({ESS_PER_CHAIN} per chain){share}: too few "
                            "independent draws; run more steps or more chains")
    if divergences:
        problems.append(f"{divergences} divergent transitions after warm-up: the draws may be biased; lower the "
                        "step size (--step-size) or try another method (--method)")
    return problems


def _row(name: str, arr: np.ndarray) -> VariableSummary:
    import arviz as az

    chains, draws = arr.shape[:2]
    shape = tuple(arr.shape[2:])
    flat = arr.reshape(chains, draws, -1).astype(float)
    size = flat.shape[2]
    if size > MAX_DIAGNOSED_ELEMENTS:
        flat = flat[:, :, np.linspace(0, size - 1, MAX_DIAGNOSED_ELEMENTS).astype(np.int64)]
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        # A constant element (a spin never flipped, a clamped value) has no R-hat: NaN, not a
        # warning; and the axes are [chains, draws] even when there are fewer draws than chains.
        warnings.simplefilter("ignore", RuntimeWarning)
        warnings.filterwarnings("ignore", message="More chains", category=UserWarning)
        # One dataset with the elements on one axis: ArviZ's own functions, called once per kind.
        data = az.convert_to_dataset({"x": flat})
        rhat = az.rhat(data)["x"].values
        bulk = az.ess(data, method="bulk")["x"].values
        tail = az.ess(data, method="tail")["x"].values
    diagnosed = int(flat.shape[2])
    with np.errstate(invalid="ignore"):
        rhat_failing = float(np.sum(rhat > RHAT_THRESHOLD)) / diagnosed
        ess_failing = float(np.sum(np.minimum(bulk, tail) < ESS_PER_CHAIN * chains)) / diagnosed
    return VariableSummary(name, shape, float(np.mean(arr)), float(np.std(arr)), _reduce(np.nanmax, rhat),
                           _reduce(np.nanmin, bulk), _reduce(np.nanmin, tail), diagnosed, size,
                           rhat_failing, ess_failing)


def _reduce(op, values: np.ndarray) -> float:
    values = np.asarray(values, dtype=float)
    return float(op(values)) if np.isfinite(values).any() else float("nan")


def _divergences(info: dict) -> tuple[int | None, int | None, tuple[int, ...] | None]:
    """(after warm-up, in all, per chain in all) from the continuous runner's info; each None
    where it is not reported. Without an after-warm-up count, every divergence counts."""
    in_all = info.get("divergences")
    if in_all is None:
        return None, None, None
    per_chain = info.get("divergences_per_chain")
    per_chain = None if per_chain is None else tuple(int(v) for v in np.ravel(per_chain))
    after = info.get("divergences_after_warmup", in_all)
    return int(after), int(in_all), per_chain


# --------------------------------------------------------------------------
# ArviZ dimension names


def arviz_dims(shapes: dict[str, tuple[int, ...]], declared: dict | None = None) -> tuple[dict, dict]:
    """(dims, coords) for `az.from_dict`: each axis named after the const of its declared
    size (`latent s[L, L]` -> ("L", "L_1"): a name repeated in one declaration takes a
    suffix, as ArviZ needs distinct dims per variable), and `s_dim_0` -- ArviZ's own
    convention -- for an axis sized by a number or an expression. A name that would mean
    two sizes, or a variable, falls back to the convention for that variable."""
    declared = declared or {}
    dims: dict[str, list[str]] = {}
    sizes: dict[str, int] = {}
    for name, shape in shapes.items():
        names = _axis_names(name, shape, declared.get(name))
        clash = any(sizes.get(d, n) != n or d in shapes or d in ("chain", "draw") for d, n in zip(names, shape))
        if clash:
            names = [f"{name}_dim_{i}" for i in range(len(shape))]
        sizes.update(zip(names, shape))
        dims[name] = names
    coords = {d: np.arange(n) for d, n in sizes.items()}
    return dims, coords


def _axis_names(name: str, shape: tuple[int, ...], declared) -> list[str]:
    if declared is None or len(declared) != len(shape):
        return [f"{name}_dim_{i}" for i in range(len(shape))]
    names, seen = [], {}
    for i, axis in enumerate(declared):
        if axis is None:
            names.append(f"{name}_dim_{i}")
            continue
        count = seen.get(axis, 0)
        seen[axis] = count + 1
        names.append(axis if count == 0 else f"{axis}_{count}")
    return names


def declared_axes(graph) -> dict[str, tuple[str | None, ...]]:
    """Per variable of `graph`, the const name that sized each axis in its declaration
    (None for a number or an expression): read from the parsed source, matched by the
    declaration's position. Empty where the source is not at hand (a checkpoint)."""
    from ebmlang.errors import EbmError
    from ebmlang.language import ast, parse_source

    if not graph.source:
        return {}
    try:
        program = parse_source(graph.source, graph.file)
    except EbmError:
        return {}
    by_position = {}
    stack = list(program.items)
    while stack:
        decl = stack.pop()
        if isinstance(decl, ast.ModelBlock):
            stack.extend(decl.items)
        elif isinstance(decl, ast.VarDecl):
            by_position[(decl.span.line, decl.span.column, decl.name)] = decl
    out = {}
    for name, var in graph.variables.items():
        decl = by_position.get((var.span.line, var.span.column, name))
        if decl is None or var.span.file != graph.file:
            continue
        out[name] = tuple(d.name if isinstance(d, ast.Name) and _IDENTIFIER.fullmatch(d.name) else None
                          for d in decl.shape)
    return out
