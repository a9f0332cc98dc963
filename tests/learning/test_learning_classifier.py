"""examples/classifier.ebm trained with the exact NLL loss on digits; a Langevin sample grid."""
from __future__ import annotations

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

import ebmlang as ebm
from ebmlang.learning import predict, save_sample_grid


def test_classifier_reaches_90_percent_and_draws_a_sample_grid(tmp_path):
    digits = load_digits()
    x_train, x_test, y_train, y_test = train_test_split(digits.data / 16.0, digits.target, test_size=0.2,
                                                        random_state=0)
    model = ebm.load("examples/classifier.ebm", seed=0)
    result = model.fit({"x": x_train, "y": y_train}, loss="nll", epochs=6, batch_size=64, lr=3e-3, seed=0,
                       progress=False)
    assert "'nll' loss over 10 labellings of y" in result.description
    assert result.losses[-1] < result.losses[0]
    accuracy = float(np.mean(predict(model, {"x": x_test})["y"] == y_test))
    assert accuracy >= 0.90, accuracy  # measured 0.95 after 6-8 epochs

    path = tmp_path / "grid" / "samples.png"
    samples = save_sample_grid(model, path, chains=16, steps=30, step_size=0.01, bounds=(0.0, 1.0), seed=0)
    assert samples.shape == (16, 64) and np.all((samples >= 0) & (samples <= 1))
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
