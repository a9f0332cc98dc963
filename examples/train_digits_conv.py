"""Train examples/digits_conv.ebm on scikit-learn's digits and write its weights.

    python examples/train_digits_conv.py                       # writes examples/digits_conv.safetensors
    python examples/train_digits_conv.py --epochs 5 --out /tmp/conv.safetensors

The recipe is IGEBM's short-run Langevin (docs/learning.md, "Recipes": SGLD steps of 10
with noise 0.005 and gradient entries clipped to 0.01, pixels clamped into [0, 1], energy
regularisation 1) with every chain restarted from uniform noise at each step -- the
non-persistent short-run MCMC of Nijkamp et al. (2019), which made the inpainting of
held-out digits markedly better than a persistent buffer here -- in batches of 16, Adam at
lr 3e-3. It trains on 3/4 of the digits (`train_test_split(test_size=0.25,
random_state=0, stratify=labels)`); the showcase inpaints the held-out quarter.
`--checkpoint-dir` makes a long run resumable (rerun the same command after a stop).
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

import ebmlang as ebm

HERE = Path(__file__).resolve().parent
RECIPE = {"method": "ml", "recipe": "igebm", "langevin": {"steps": 20, "reinit_prob": 1.0}, "batch_size": 16,
          "lr": 3e-3}
EPOCHS = 100


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=EPOCHS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--backend", default="jax", help="jax (compiled training steps; default) or torch")
    parser.add_argument("--out", type=Path, default=HERE / "digits_conv.safetensors")
    parser.add_argument("--checkpoint-dir", type=Path, default=None)
    args = parser.parse_args()

    images, labels = load_digits(return_X_y=True)
    train, _, _, _ = train_test_split(images / 16.0, labels, test_size=0.25, random_state=0, stratify=labels)
    model = ebm.load(HERE / "digits_conv.ebm", backend=args.backend, seed=args.seed)
    started = time.perf_counter()
    model.fit({"x": train.reshape(-1, 1, 8, 8)}, epochs=args.epochs, seed=args.seed, progress=True, eval_every=0,
              checkpoint_dir=args.checkpoint_dir, **RECIPE)
    model.save(args.out)
    print(f"trained {args.epochs} epochs in {time.perf_counter() - started:.0f} s; wrote {args.out}")


if __name__ == "__main__":
    main()
