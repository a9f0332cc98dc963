"""`ebm fit --history`: a run's per-epoch metrics as arrays, or as the figure of the one
that means most for the model (a likelihood or a score-matching loss before the loss)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ebmlang.errors import EbmError

# Entries of a fit history record that are not training metrics.
BOOKKEEPING = ("epoch", "lr", "seconds", "total_seconds")

def training_curve(result) -> dict[str, np.ndarray]:
    """The per-epoch metrics of a `FitResult` (its `history`: one dict per epoch), without
    bookkeeping entries; a metric missing in some epoch is NaN there."""
    history = getattr(result, "history", result)
    if isinstance(history, list) and history and isinstance(history[0], dict):
        keys = [k for k in dict.fromkeys(k for row in history for k in row)
                if k not in BOOKKEEPING and all(isinstance(row.get(k, np.nan), (int, float, np.number))
                                                for row in history)]
        history = {k: [float(row.get(k, np.nan)) for row in history] for k in keys}
    if not isinstance(history, dict):
        return {}
    curves = {}
    for key, values in history.items():
        try:
            arr = np.asarray(values, dtype=float)
        except (TypeError, ValueError):
            continue
        if arr.ndim == 1 and arr.size:
            curves[str(key)] = arr
    return curves


# The metric a history figure shows: the first the run recorded, with its axis label.
# A likelihood (exact or AIS) or a score-matching loss means something across epochs and
# methods; the training loss of one method is the last resort.
HISTORY_METRICS = {
    "log_likelihood": "mean log-likelihood (nats per example)",
    "score_matching_loss": "score-matching loss (lower is better)",
    "accuracy": "accuracy",
    "reconstruction_error": "reconstruction error",
    "loss": "training loss",
}


def write_history(path: str, curve: dict[str, np.ndarray], run: str = "fit"):
    """Write `curve` as arrays (.npz / .safetensors) or as a figure (.png / .svg / .pdf),
    returned (None for arrays)."""
    if not curve:
        raise EbmError("fit returned no training curve to write")
    out = Path(path)
    if out.suffix.lower() in (".png", ".svg", ".pdf"):
        from ebmlang.api.plot import plot_curves

        recorded = [k for k in HISTORY_METRICS if k in curve and np.isfinite(curve[k]).any()]
        label = recorded[0] if recorded else next(iter(curve))
        values = curve[label]
        epochs = np.flatnonzero(np.isfinite(values))  # metrics taken every eval_every epochs
        errors = curve.get(label + "_se")
        ylabel = HISTORY_METRICS.get(label, label.replace("_", " "))
        where = "on the evaluation data" if label != "loss" else "mean over the epoch's steps"
        name = label.replace("_", " ")
        figure = plot_curves(epochs + 1, {name: values[epochs]}, xlabel="epoch", ylabel=ylabel,
                             title=f"{run}: {ylabel.split(' (')[0]} per epoch ({where})",
                             errors=None if errors is None else {name: errors[epochs]}, path=out)
    else:
        from ebmlang.api.io import write_arrays

        write_arrays(out, curve)
        figure = None
    print(f"wrote {out}")
    return figure
