"""Tabular discrete energy models: every factor is a table of energies.

A `TabularMRF` is the form the discrete MAP solvers and the exact queries of
`ebmlang.inference.discrete_map` work on. It is frozen numpy data:

    E(x) = constant + sum_i unary[i, x_i] + sum_e pairwise[e, x_a, x_b]
                    + sum over higher-order factors of table[f, flat(x_f)]

with `(a, b) = edges[e]`. Variable i takes labels 0..num_labels[i]-1; the tables
are padded to the largest label count `Kmax`, and `unary` is +inf on the padding
labels. `+inf` anywhere is a hard constraint. `-inf` and NaN are refused.

Pairwise and higher-order entries at padding labels never count (the unary
forbids those labels); on construction they are overwritten with the entries of
label 0, so that per-edge checks (submodularity, Potts) only see real labels.

The pieces, one module each:

    validation      TabularModelError and the checks every table passes on construction
    higher_factor   HigherFactor: tables over three or more variables
    mrf             TabularMRF: the model itself (shape, energy, rewriting, solver checks)
    edge_checks     the per-edge-table predicates behind TabularMRF's solver checks
    structure       grid edges and colourings of the interaction graph
    local_energies  LocalEnergies: conditional energies of a colour class, for ICM and Gibbs
"""
from __future__ import annotations

from ebmlang.inference.tabular.higher_factor import HigherFactor
from ebmlang.inference.tabular.local_energies import LocalEnergies
from ebmlang.inference.tabular.mrf import TabularMRF
from ebmlang.inference.tabular.structure import check_colouring, colour_variables, grid_edges
from ebmlang.inference.tabular.validation import TabularModelError

__all__ = [
    "HigherFactor",
    "TabularMRF",
    "LocalEnergies",
    "TabularModelError",
    "check_colouring",
    "colour_variables",
    "grid_edges",
]
