"""Result objects returned by sampling and minimisation."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Samples:
    """Draws per variable with axes [chains, draws, *shape], energy traces and diagnostics.

    `to_arviz()` gives an ArviZ InferenceData so R-hat and ESS work as in PyMC/NumPyro.
    """

    draws: dict
    energy: np.ndarray  # [chains, draws]
    plan: object
    acceptance: dict = field(default_factory=dict)
    info: dict = field(default_factory=dict)

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
        import arviz as az

        posterior = {k: np.asarray(v) for k, v in self.draws.items()}
        stats = {"energy": self.energy}
        return az.from_dict(posterior=posterior, sample_stats=stats)

    def summary(self) -> str:
        lines = [f"Samples: {self.num_chains} chains x {self.num_draws} draws"]
        for name, arr in self.draws.items():
            lines.append(f"  {name}: shape {list(arr.shape[2:])}, mean {float(np.mean(arr)):.4g}, "
                         f"sd {float(np.std(arr)):.4g}")
        lines.append(f"  energy: mean {float(np.mean(self.energy)):.6g} (last draw "
                     f"{float(np.mean(self.energy[:, -1])):.6g})")
        for k, v in self.acceptance.items():
            lines.append(f"  acceptance[{k}]: {v:.3f}")
        if self.plan is not None:
            lines.append("  " + self.plan.describe(terms=False).replace("\n", "\n  "))
        return "\n".join(lines)

    def __repr__(self) -> str:
        return self.summary()

    def _repr_html_(self) -> str:
        rows = "".join(f"<tr><td>{k}</td><td>{list(v.shape[2:])}</td><td>{float(np.mean(v)):.4g}</td>"
                       f"<td>{float(np.std(v)):.4g}</td></tr>" for k, v in self.draws.items())
        return (f"<p><b>Samples</b>: {self.num_chains} chains &times; {self.num_draws} draws</p>"
                f"<table><tr><th>variable</th><th>shape</th><th>mean</th><th>sd</th></tr>{rows}</table>")


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
