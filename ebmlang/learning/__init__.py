"""Learning: fit parameters by MCMC maximum likelihood or contrastive losses, evaluate
models exactly (or by AIS), and save / load checkpoints.

    result = model.fit({"v": images}, epochs=10, lr=0.1, optimizer="sgd")   # -> fit(...)
    model.log_prob({"v": test_images})                                      # -> log_prob(...)
"""
from ebmlang.learning.evaluation import (
    AISResult,
    ais_log_partition,
    log_partition,
    log_prob,
    predict,
)
from ebmlang.learning.fit import FitResult, fit
from ebmlang.learning.marginal import MarginalPotential, sample_marginal, save_sample_grid

__all__ = [
    "AISResult", "FitResult", "MarginalPotential", "ais_log_partition", "fit", "log_partition", "log_prob",
    "predict", "sample_marginal", "save_sample_grid",
]
