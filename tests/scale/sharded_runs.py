"""Run in a subprocess with XLA_FLAGS=--xla_force_host_platform_device_count=4 (JAX reads
the flag once, at import): one-device and four-device runs of the same seeds, saved to
the .npz named on the command line for tests/scale/test_jax_sharding.py to compare."""
from __future__ import annotations

import sys
from pathlib import Path

import jax
import numpy as np

import ebmlang as ebm
from ebmlang.distributed import sample_sharded
from ebmlang.errors import EbmError

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

MIXED = """
latent z : binary
latent x[2] : real
energy pull[i in 0..2] = 0.5 * (x[i] - (4 * z - 2))^2
"""


def main(out: str) -> None:
    results: dict[str, np.ndarray] = {"device_count": np.array(jax.device_count())}
    ising = ebm.loads((EXAMPLES / "ising.ebm").read_text().replace("const L = 32", "const L = 8"),
                      backend="jax", name="ising.ebm")
    single = ising.sample(chains=8, steps=40, seed=3, progress=False)
    sharded = sample_sharded(ising, chains=8, steps=40, seed=3)
    results.update({"ising_single": single["s"], "ising_sharded": sharded["s"], "ising_energy_single": single.energy,
                    "ising_energy_sharded": sharded.energy,
                    "ising_devices": np.array(sharded.info["devices"]),
                    "ising_spec": np.array(sharded.info["state_sharding"]["s"])})

    gaussian = (EXAMPLES / "gaussian.ebm").read_text()
    wide = ebm.loads(gaussian, backend="jax", name="gaussian.ebm", dtype="float64")
    results["mala_adapted_single"] = wide.sample(chains=8, steps=120, seed=6, method="mala", progress=False)["x"]
    results["mala_adapted_sharded"] = sample_sharded(wide, chains=8, steps=120, seed=6, method="mala")["x"]
    # The plan's own choice for this model (NUTS) runs sharded too.
    results["nuts_sharded"] = sample_sharded(wide, chains=8, steps=120, seed=6)["x"]

    mixed = ebm.loads(MIXED, backend="jax", name="mixed.ebm")
    one = mixed.sample(chains=4, steps=40, seed=7, burn_in=0, progress=False)
    many = sample_sharded(mixed, chains=4, steps=40, seed=7, burn_in=0)
    results.update({"mixed_z_single": one["z"], "mixed_z_sharded": many["z"],
                    "mixed_x_single": one["x"], "mixed_x_sharded": many["x"]})

    try:
        sample_sharded(ising, chains=6, steps=2)
        results["uneven_error"] = np.array("")
    except EbmError as error:
        results["uneven_error"] = np.array(str(error))
    for name, run in (("annealing_error_sharded", lambda: sample_sharded(ising, chains=8, steps=2, method="annealed_gibbs")),
                      ("annealing_error_single", lambda: ising.sample(chains=8, steps=2, method="annealed_gibbs"))):
        try:
            run()
            results[name] = np.array("")
        except EbmError as error:
            results[name] = np.array(str(error))
    np.savez(out, **results)


if __name__ == "__main__":
    main(sys.argv[1])
