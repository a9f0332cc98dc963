"""Eager torch steps recorded once and replayed (backends/torch_fusion.py): the replay
gives the same numbers as the eager step, bit for bit, through `Model.sample` for every
traceable continuous kernel; moves it cannot record stay eager."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import ebmlang as ebm
from ebmlang.backends import torch_fusion
from ebmlang.backends.torch_fusion import TracedMove, traced_step

MIXED = """
latent z : binary
latent x[3] : real
latent p : real in [0, 1]
energy label = -log(0.3 + 0.4 * z)
energy fit = 0.5 * sum(i in 0..3) (x[i] - (3 * z - 1))^2 + 0.2 * x[0] * x[1]
energy beta = -log(p) - 4 * log(1 - p) + 0.1 * p * x[2]
"""


def sample(method: str, trace_after: float, monkeypatch):
    # Seconds of eager calls before tracing: 0 traces at the first call after one eager one
    # (as soon as any time has passed), 1e9 never.
    monkeypatch.setattr(torch_fusion, "TRACE_AFTER_SECONDS", trace_after)
    model = ebm.loads(MIXED, backend="torch", dtype="float64")
    return model.sample(chains=6, steps=60, burn_in=20, seed=3, method=method, progress=False)


@pytest.mark.parametrize("method", ["mala", "hmc", "ula", "rwmh"])
def test_replayed_steps_draw_exactly_what_eager_steps_draw(method, monkeypatch):
    # Traced at once (in warm-up, then again for the frozen post-warm-up step) against
    # never traced: a mixed model (the discrete values are an input of every move) with a
    # bounded variable (the logit transform and its Jacobian are in the recorded graph).
    eager = sample(method, 1e9, monkeypatch)
    traces = []
    original = TracedMove._trace
    monkeypatch.setattr(TracedMove, "_trace", lambda self, *a: traces.append(1) or original(self, *a))
    replayed = sample(method, 0.0, monkeypatch)
    assert traces  # the replayed run did record its move
    for name in ("x", "p", "z"):
        np.testing.assert_array_equal(replayed.draws[name], eager.draws[name])
    np.testing.assert_array_equal(replayed.energy, eager.energy)


def test_a_move_that_reads_values_on_the_host_stays_eager():
    def move(state, draws):
        if float(state.sum()) > 0:  # a host read: fake tensors cannot answer it
            return state + draws
        return state - draws

    traced = TracedMove(move, trace_after=1)
    state, draws = torch.ones(3), torch.full((3,), 0.5)
    assert torch.equal(traced(state, draws), torch.full((3,), 1.5))
    assert list(traced.graphs.values()) == [None]
    assert torch.equal(traced(-state, draws), torch.full((3,), -1.5))  # still the live branch


def test_each_input_signature_is_recorded_on_its_own():
    calls = []

    def move(state, draws, scale):
        calls.append(1)
        return state * scale + draws

    step = traced_step(lambda key, state: torch.ones_like(state), move, trace_after=2)
    small, large = torch.arange(3.0), torch.arange(5.0)
    for _ in range(4):
        assert torch.equal(step(None, small, 2.0), small * 2 + 1)
        assert torch.equal(step(None, large, 2.0), large * 2 + 1)
    # A number is part of the signature: another scale is another recording.
    assert torch.equal(step(None, small, 3.0), small * 3 + 1)
    # Eager once per shape before recording, one trace each, then replays without Python:
    # 2 shapes x (1 eager + 1 traced) + 1 eager call at the new scale.
    assert len(calls) == 5
