"""The help texts of the `ebm` model subcommands: one line each, and worked examples.

`COMMAND_HELP` is each subcommand's one-line help and description, `EXAMPLES` its
epilog. Text, not logic: kept apart so the handlers in commands.py read without it.
"""

from ebmlang.cli.marginals_command import EXAMPLES as MARGINALS_EXAMPLES
from ebmlang.cli.marginals_command import HELP as MARGINALS_HELP

COMMAND_HELP = {
    "graph": "show a model's factor graph: summary, DOT, a drawing, or a file",
    "plan": "show the inference method chosen for each block of latent variables, and why",
    "sample": "draw samples with the automatically chosen MCMC method",
    "argmin": "find the minimum-energy (MAP) state",
    "marginals": MARGINALS_HELP,
    "fit": "fit a model's parameters to data and save a checkpoint",
    "energy": "evaluate the energy (and per-term energies) of given states",
}

EXAMPLES = {
    "graph": """examples:
  ebm graph examples/rbm.ebm                       # text summary of groups, factors, params
  ebm graph examples/ising.ebm --format dot         # Graphviz DOT on stdout
  ebm graph examples/rbm.ebm --out rbm.png          # a drawing (.png/.svg/.pdf)
  ebm graph examples/sudoku.ebm --ground --out s.png  # every ground variable and factor
  ebm graph examples/ising.ebm --out ising.dot      # DOT (or .json/.graphml) file""",
    "plan": """examples:
  ebm plan examples/ising.ebm
  ebm plan examples/denoise.ebm --query argmin --observe y
  ebm plan examples/ring.ebm --method hmc""",
    "sample": """examples:
  ebm sample examples/ising.ebm --chains 8 --steps 500 --out draws.npz
  ebm sample examples/ising.ebm --set J=0.3 --steps 200 --plot trace.png
  ebm sample examples/ring.ebm --method hmc --chains 16 --steps 2000 --out ring.safetensors
  ebm sample examples/denoise.ebm --observe y=noisy.npy --temperature 0.5

The output file holds one array per latent variable, [chains, draws, *shape],
and `energy` [chains, draws].""",
    "argmin": """examples:
  ebm argmin examples/sudoku.ebm
  ebm argmin examples/denoise.ebm --observe y=noisy.npy --out clean.npz
  ebm argmin examples/gaussian.ebm --backend jax""",
    "marginals": MARGINALS_EXAMPLES,
    "fit": """examples:
  ebm fit examples/rbm.ebm --data digits.npz --epochs 10 --out rbm.safetensors
  ebm fit examples/boltzmann.ebm --data s=spins.npy --lr 0.05 --method pcd
  ebm sample rbm.safetensors --chains 16 --steps 200      # use the fitted model

--data FILE reads every array of FILE (keys are variable names); --data NAME=FILE
reads one array for one variable. The checkpoint (.safetensors) loads with
`ebm.load(path)` and with every ebm command.""",
    "energy": """examples:
  ebm energy examples/gaussian.ebm --value x=point.npy
  ebm energy examples/ising.ebm --state draws.npz --terms --out energies.npy
  ebm energy examples/rbm.ebm --value v=v.npy --value h=h.npy

Arrays may be one state [*shape] or a batch [batch, *shape]; one energy is
printed per state.""",
}
