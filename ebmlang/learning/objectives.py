"""Training objectives: `make_objective` picks the one `fit` optimises.

Every gradient learning needs here is a weighted sum of energy gradients (and, where
independent units are summed out, of free-energy gradients),

    grad L = sum_m w_m dE(state_m)/dtheta + sum_b u_b dF(row_b)/dtheta,

so an objective's `step` returns states and weights (`WeightedStates`, weighted.py) and
`fit` turns them into one gradient (`weighted_gradient`) -- the same on torch and JAX.

The objectives (`make_objective` picks one by name):

* likelihood.py -- `MaximumLikelihood` (CD-k / PCD with block Gibbs, short-run Langevin
  from a replay buffer, or both alternating) and `ExactLikelihood` (enumeration).
* contrastive.py -- `Contrastive` (LeCun et al.'s losses over small discrete targets)
  and `JointEnergy` (JEM).
* score_matching.py -- `ScoreMatching` (denoising and sliced score matching) and nce.py --
  `NoiseContrastive`: continuous data scored without sampling from the model
  (observed_energy.py sums hidden units out exactly).

Each keeps its persistent state (chains, replay buffer) as numpy arrays for
checkpoints: `state_arrays()` / `load_state_arrays()`, and has `evaluate(key, data,
params) -> dict` for the per-epoch record, `kind` and a readable `name`.
"""
from __future__ import annotations

from ebmlang.errors import EbmError
from ebmlang.learning.contrastive import Contrastive, JointEnergy
from ebmlang.learning.likelihood import ExactLikelihood, MaximumLikelihood


def make_objective(model, data, *, method, loss, margin, k, persistent, chains, langevin, energy_reg,
                   gen_weight, seed, rao_blackwell="classes", scoring=None, known=None, known_fraction=0.5):
    """The objective `method` names (see `fit`), with `.kind` set to the method.
    scoring: the options of score matching and NCE ({noise, projections, noise_ratio})."""
    scoring = scoring or {}
    if method == "auto":
        method = "contrastive" if loss is not None else "ml"
    if loss is not None and method not in ("contrastive", "jem"):
        raise EbmError(f"loss='{loss}' is a contrastive loss; it does not combine with method='{method}'",
                       hint="use method='auto' or 'contrastive' with a loss, or drop loss= for likelihood")
    if method == "jem":
        if loss not in (None, "nll"):
            raise EbmError("JEM trains the classifier with loss='nll'")
        objective = JointEnergy(model, data, chains=chains, langevin=langevin, gen_weight=gen_weight,
                                energy_reg=energy_reg, seed=seed)
    elif method == "contrastive":
        objective = _structured(model, data) if loss in (None, "nll") else None
        objective = objective or Contrastive(model, data, loss=loss or "nll", margin=margin)
    elif method in ("dsm", "ssm"):
        from ebmlang.learning.score_matching import ScoreMatching

        objective = ScoreMatching(model, data, sliced=method == "ssm", noise=scoring.get("noise"),
                                  projections=scoring.get("projections", 1), seed=seed)
    elif method == "nce":
        from ebmlang.learning.nce import NoiseContrastive

        objective = NoiseContrastive(model, data, noise_ratio=scoring.get("noise_ratio", 1.0), seed=seed,
                                     lr=scoring.get("lr", 1e-2))
    elif method == "exact":
        objective = ExactLikelihood(model, data, energy_reg=energy_reg)
    else:
        objective = MaximumLikelihood(model, data, k=k, persistent=persistent if method == "ml" else method == "pcd",
                                      chains=chains, langevin=langevin, energy_reg=energy_reg, seed=seed,
                                      rao_blackwell=rao_blackwell, known=known, known_fraction=known_fraction)
    if known and not isinstance(objective, MaximumLikelihood):
        raise EbmError(f"known= (conditional negatives) is for maximum likelihood, not method='{method}'",
                       hint="use method='ml' (short-run Langevin from a replay buffer)")
    objective.kind = method
    return objective


def _structured(model, data):
    """The exact chain likelihood when the targets have more joint labellings than the
    contrastive losses enumerate (an error when they do not form a tree); else None."""
    import math

    from ebmlang.learning.losses import TARGET_STATE_LIMIT, target_groups
    from ebmlang.learning.structured import chain_likelihood

    targets = target_groups(model.graph, data, None)
    log_count = sum(model.graph.variables[g].size * math.log(model.graph.variables[g].domain.num_values)
                    for g in targets)
    if log_count <= math.log(TARGET_STATE_LIMIT):
        return None
    return chain_likelihood(model, data, targets, f"2^{log_count / math.log(2):.1f}")
