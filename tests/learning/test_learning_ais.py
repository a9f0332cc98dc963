"""AIS estimates of log Z against the exact value."""
from __future__ import annotations

import numpy as np
import pytest

import ebmlang as ebm
from ebmlang.errors import EbmError
from ebmlang.learning import ais_log_partition, log_partition


def test_ais_matches_exact_log_z_within_its_standard_error():
    model = ebm.load("examples/boltzmann.ebm", seed=0)
    rng = np.random.default_rng(7)
    model.set_params(W=rng.normal(0, 0.3, (12, 12)), b=rng.normal(0, 0.3, 12))
    exact = log_partition(model)
    result = ais_log_partition(model, chains=200, steps=300, seed=1)
    # The estimate's error is about one standard error (delta method over 200 chains);
    # 3 SE plus 0.02 for the downward Jensen bias of log(mean weight) (~ SE^2 / 2).
    assert abs(result.log_z - exact) < 3 * result.stderr + 0.02
    # ...and the standard error is small enough for that to be a real check.
    assert result.stderr < 0.05
    assert result.effective_sample_size > 50


def test_ais_with_one_step_is_importance_sampling_from_uniform():
    # With betas [0, 1] AIS is plain importance sampling: still consistent, but noisier.
    model = ebm.load("examples/boltzmann.ebm", seed=0)
    exact = log_partition(model)
    result = ais_log_partition(model, chains=4000, betas=[0.0, 1.0], seed=2)
    assert abs(result.log_z - exact) < 3 * result.stderr + 0.02


def test_ais_rejects_bad_schedules_and_continuous_models():
    model = ebm.load("examples/boltzmann.ebm")
    with pytest.raises(EbmError, match="increase strictly"):
        ais_log_partition(model, betas=[0.0, 0.5, 0.4, 1.0])
    with pytest.raises(EbmError, match="discrete"):
        ais_log_partition(ebm.load("examples/ring.ebm"))
