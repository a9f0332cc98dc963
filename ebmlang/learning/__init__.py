"""Learning: fit parameters by MCMC maximum likelihood or contrastive losses, evaluate
models exactly (or by AIS), and save / load checkpoints.

    result = model.fit({"v": images}, epochs=10, lr=0.1, optimizer="sgd")   # -> fit(...)
    model.log_prob({"v": test_images})                                      # -> log_prob(...)
    model.log_z()                                   # exact or AIS, saying which -> log_z(...)
"""
from ebmlang.learning.evaluation import (
    AISResult,
    LogZResult,
    ais_log_likelihood,
    ais_log_partition,
    ais_log_z,
    log_partition,
    log_prob,
    log_z,
    predict,
)
from ebmlang.learning.fit import FitResult, fit
from ebmlang.learning.marginal import MarginalPotential, sample_marginal, save_sample_grid

__all__ = [
    "AISResult", "FitResult", "LogZResult", "MarginalPotential", "ais_log_likelihood", "ais_log_partition",
    "ais_log_z", "fit", "log_partition", "log_prob", "log_z", "predict", "sample_marginal", "save_sample_grid",
]
