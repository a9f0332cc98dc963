"""Train examples/digits_conv.ebm on scikit-learn's digits and write its weights.

    python examples/train_digits_conv.py                       # writes examples/digits_conv.safetensors
    python examples/train_digits_conv.py --epochs 5 2 --out /tmp/conv.safetensors

Two stages, both `fit` with IGEBM's short-run Langevin (docs/learning.md, "Recipes": SGLD
steps of 10 with noise 0.005 and gradient entries clipped to 0.01, pixels clamped into
[0, 1], energy regularisation 1), 20 steps from uniform noise at every update (the
non-persistent short-run MCMC of Nijkamp et al. 2019), batches of 16:

1. 50 epochs of plain maximum likelihood (Adam, lr 3e-3): a model of whole digits. It
   fills bottom halves only about as well as the mean digit does, and more epochs made
   that worse.
2. 30 epochs more (lr 1e-3) with conditional negatives, `known={"x": top rows}`: half of
   the 32 chains hold each batch digit's top half and sample its bottom, so the energy
   also learns which bottoms go with which tops -- what inpainting asks of it.

It trains on 3/4 of the digits (`train_test_split(test_size=0.25, random_state=0,
stratify=labels)`); the showcase inpaints the held-out quarter.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

import ebmlang as ebm

HERE = Path(__file__).resolve().parent
SAMPLER = {"method": "ml", "recipe": "igebm", "langevin": {"steps": 20, "reinit_prob": 1.0}, "batch_size": 16}
EPOCHS = (50, 30)


def top_rows() -> np.ndarray:
    """The known half of an inpainting query: rows 0-3 of the 8 x 8 image."""
    mask = np.zeros((1, 8, 8), dtype=bool)
    mask[:, :4] = True
    return mask


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, nargs=2, default=EPOCHS, metavar=("JOINT", "CONDITIONAL"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--backend", default="jax", help="jax (compiled training steps; default) or torch")
    parser.add_argument("--out", type=Path, default=HERE / "digits_conv.safetensors")
    args = parser.parse_args()

    images, labels = load_digits(return_X_y=True)
    train, _, _, _ = train_test_split(images / 16.0, labels, test_size=0.25, random_state=0, stratify=labels)
    model = ebm.load(HERE / "digits_conv.ebm", backend=args.backend, seed=args.seed)
    started = time.perf_counter()
    data = {"x": train.reshape(-1, 1, 8, 8)}
    joint, conditional = args.epochs
    model.fit(data, epochs=joint, lr=3e-3, seed=args.seed, progress=True, eval_every=0, **SAMPLER)
    model.fit(data, epochs=conditional, lr=1e-3, seed=args.seed + 1, progress=True, eval_every=0,
              known={"x": top_rows()}, known_fraction=0.5, chains=32, **SAMPLER)
    model.save(args.out)
    print(f"trained {joint} + {conditional} epochs in {time.perf_counter() - started:.0f} s; wrote {args.out}")


if __name__ == "__main__":
    main()
