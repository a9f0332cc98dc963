"""Result objects returned by sampling and minimisation."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ebmlang.inference.summary import SampleSummary, arviz_dims, summarise, warn_problems


@dataclass
class Samples:
    """Draws per variable with axes [chains, draws, *shape], energy traces and diagnostics.

    `to_arviz()` gives an ArviZ InferenceData so R-hat and ESS work as in PyMC/NumPyro;
    `summary()` reduces them to one row per variable and warns when the chains have not mixed.
    """

    draws: dict
    energy: np.ndarray  # [chains, draws]
    plan: object
    acceptance: dict = field(default_factory=dict)
    info: dict = field(default_factory=dict)
    # Variable -> the const name sizing each axis in its declaration (None: a number), for
    # ArviZ's dims; `summary.declared_axes(model.graph)` reads it from the model's source.
    axis_names: dict = field(default_factory=dict)

    def __getitem__(self, name: str) -> np.ndarray:
        return self.draws[name]

    @property
    def num_chains(self) -> int:
        return int(self.energy.shape[0])

    @property
    def num_draws(self) -> int:
        return int(self.energy.shape[1])

    def last(self) -> dict:
        """The final state of every chain: group -> [chains, *shape]."""
        return {k: v[:, -1] for k, v in self.draws.items()}

    def flat(self, name: str) -> np.ndarray:
        """Draws of one variable with chains and draws merged: [chains * draws, *shape]."""
        arr = self.draws[name]
        return arr.reshape((-1,) + arr.shape[2:])

    def to_arviz(self):
        """An ArviZ InferenceData: dims named after each declaration's axes when
        `axis_names` holds them (`s[L, L]` -> ("L", "L_1")), else `s_dim_0`, with coords 0..n-1."""
        import arviz as az

        posterior = {k: np.asarray(v) for k, v in self.draws.items()}
        dims, coords = arviz_dims({k: v.shape[2:] for k, v in posterior.items()}, self.axis_names)
        stats = {"energy": self.energy}
        return az.from_dict(posterior=posterior, sample_stats=stats, dims=dims, coords=coords)

    def summary(self, warn: bool = True) -> SampleSummary:
        """Mean, sd, R-hat (max over elements), bulk and tail ESS (min) per variable and for
        the energy, and divergences where the sampler counts them; `print` it for the text,
        `.to_dict()` for numbers. Each failed threshold (R-hat > 1.01, ESS < 100 per chain)
        is also a `ConvergenceWarning`, one per variable, unless `warn=False` (the caller
        reports `.problems` itself, as `ebm sample` does on stderr)."""
        result = self._summary()
        if warn:
            warn_problems(result)
        return result

    def _summary(self) -> SampleSummary:
        plan = self.plan.describe(terms=False) if self.plan is not None else ""
        return summarise(self.draws, self.energy, self.info, self.acceptance, plan)

    def __repr__(self) -> str:
        # No warnings from a repr: a notebook shows the problems in the text only.
        return str(self._summary())

    def _repr_html_(self) -> str:
        result = self._summary()
        rows = "".join(f"<tr><td>{r.name}</td><td>{list(r.shape)}</td><td>{r.mean:.4g}</td><td>{r.sd:.4g}</td>"
                       f"<td>{r.rhat:.3f}</td><td>{r.ess_bulk:.0f}</td><td>{r.ess_tail:.0f}</td></tr>"
                       for r in [*result.variables.values(), result.energy])
        problems = "".join(f"<p>warning: {p}</p>" for p in result.problems)
        return (f"<p><b>Samples</b>: {self.num_chains} chains &times; {self.num_draws} draws</p>"
                "<table><tr><th>variable</th><th>shape</th><th>mean</th><th>sd</th><th>R-hat max</th>"
                f"<th>ESS bulk min</th><th>ESS tail min</th></tr>{rows}</table>{problems}")


@dataclass
class ArgminResult:
    """The minimising state (group -> array [*shape]), its energy and how it was found.

    For a batch of observed rows: arrays [B, *shape], `energy` an array [B], and
    `info["rows"]` the details of each row."""

    state: dict
    energy: float
    method: str
    reason: str
    info: dict = field(default_factory=dict)

    def __getitem__(self, name: str) -> np.ndarray:
        return self.state[name]

    def __repr__(self) -> str:
        groups = ", ".join(f"{k}{list(np.shape(v))}" for k, v in self.state.items())
        energy = (f"{self.energy:.6g}" if np.ndim(self.energy) == 0
                  else np.array2string(np.asarray(self.energy), precision=6, threshold=8))
        return f"ArgminResult(energy={energy}, method={self.method!r}, state: {groups})\n  why: {self.reason}"


@dataclass
class Conditional:
    """An exact Gibbs distribution over the values of small discrete latent variables."""

    states: dict  # group -> [S, *shape]
    probs: np.ndarray  # [S]
    energies: np.ndarray  # [S]
    beta: float

    def __repr__(self) -> str:
        order = np.argsort(-self.probs)[:5]
        top = "; ".join(f"p={self.probs[i]:.4f}" for i in order)
        return f"Conditional({len(self.probs)} states, beta={self.beta}; top: {top})"
