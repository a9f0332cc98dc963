"""RBM learning: ebmlang's PCD against scikit-learn's BernoulliRBM on binarised digits.

    .venv/bin/python benchmarks/bench_rbm_learning.py              # 20 epochs, seeds 0-2
    .venv/bin/python benchmarks/bench_rbm_learning.py --smoke      # 2 epochs, one seed
    .venv/bin/python benchmarks/bench_rbm_learning.py --epochs 10 --lr 0.1 --backend jax

Both train examples/rbm.ebm's model (64 visible, 16 hidden) on the same split with the same
hidden units, epochs, learning rate, batch size and plain SGD; scikit-learn runs PCD-1 with
mean-field hidden units, ebmlang runs PCD-1 with the hidden units summed out exactly in the
data phase, both colour classes summed out of the chains in turn, and Polyak averaging of
the iterates (ema=0.99). Printed per seed: the exact mean test log-likelihood of each
(benchmarks/rbm_exact.py: 2^16 hidden states enumerated) and the training times; at the
end the means and the ratio of training times.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import numpy as np  # noqa: E402

from benchmarks.rbm_exact import log_likelihood  # noqa: E402
from benchmarks.workloads.rbm import BATCH_SIZE, HIDDEN, LEARNING_RATE, load_split  # noqa: E402


def train_sklearn(train: np.ndarray, epochs: int, lr: float, seed: int):
    from sklearn.neural_network import BernoulliRBM

    start = time.perf_counter()
    rbm = BernoulliRBM(n_components=HIDDEN, learning_rate=lr, n_iter=epochs, batch_size=BATCH_SIZE,
                       random_state=seed).fit(train)
    seconds = time.perf_counter() - start
    return (rbm.components_, rbm.intercept_visible_, rbm.intercept_hidden_), seconds


def train_ebmlang(train: np.ndarray, epochs: int, lr: float, seed: int, backend: str):
    import ebmlang as ebm

    model = ebm.load(REPO_ROOT / "examples" / "rbm.ebm", backend=backend, seed=seed)
    start = time.perf_counter()
    model.fit({"v": train}, method="pcd", epochs=epochs, batch_size=BATCH_SIZE, lr=lr, optimizer="sgd",
              ema=0.99, seed=seed, progress=False, eval_every=0)
    seconds = time.perf_counter() - start
    params = model.param_values()
    # rbm.ebm's W is [visible, hidden]; rbm_exact takes scikit-learn's [hidden, visible].
    return (params["W"].T, params["b"], params["c"]), seconds, model


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--lr", type=float, default=LEARNING_RATE)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--backend", default="torch", choices=("torch", "jax"))
    parser.add_argument("--torch-threads", type=int, default=1,
                        help="torch intra-op threads (1 is fastest for these small batches)")
    parser.add_argument("--smoke", action="store_true", help="2 epochs, one seed")
    args = parser.parse_args(argv)
    if args.smoke:
        args.epochs, args.seeds = 2, 1
    import torch

    torch.set_num_threads(args.torch_threads)
    train, test = load_split()
    print(f"RBM 64x{HIDDEN} on digits: {len(train)} train / {len(test)} test, {args.epochs} epochs, "
          f"lr {args.lr}, batch {BATCH_SIZE}, ebmlang backend {args.backend}")
    rows = []
    for seed in range(args.seeds):
        sk_params, sk_seconds = train_sklearn(train, args.epochs, args.lr, seed)
        our_params, our_seconds, model = train_ebmlang(train, args.epochs, args.lr, seed, args.backend)
        sk_ll = float(np.mean(log_likelihood(test, *sk_params)))
        our_ll = float(np.mean(log_likelihood(test, *our_params)))
        rows.append((sk_ll, our_ll, sk_seconds, our_seconds))
        print(f"seed {seed}: test log-likelihood  sklearn {sk_ll:8.3f}   ebmlang {our_ll:8.3f}   "
              f"train time  sklearn {sk_seconds:6.2f} s   ebmlang {our_seconds:6.2f} s")
    # ebmlang's own exact evaluation agrees with the closed form (checked on the last model).
    from ebmlang.learning import log_prob

    own = float(np.mean(log_prob(model, {"v": test})))
    print(f"ebmlang log_prob on the last model: {own:.3f} (closed form {rows[-1][1]:.3f})")
    sk_ll, our_ll, sk_seconds, our_seconds = np.mean(np.array(rows), axis=0)
    print(f"mean: sklearn {sk_ll:.3f}, ebmlang {our_ll:.3f} (difference {our_ll - sk_ll:+.3f} nats per image); "
          f"training time ratio ebmlang / sklearn = {our_seconds / sk_seconds:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
