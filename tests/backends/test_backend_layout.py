"""Strided block layouts (backends/layout.py): which blocks get one, and that reading a
lattice through it -- rolls, slices and selects instead of gathers -- gives exactly the
conditionals, reads and writes of the general path."""
from __future__ import annotations

import numpy as np
import pytest
from backend_testing import backend, check_block

import ebmlang as ebm
from ebmlang.backends.evaluator import plan_block
from ebmlang.backends.layout import find_layout
from ebmlang.graph.reference import reference_energy, reference_init_params
from ebmlang.graph.structure import colouring


def checkerboard(shape, colour):
    coords = np.indices(shape).sum(0)
    return np.flatnonzero((coords % 2 == colour).reshape(-1))


def test_checkerboard_colours_have_stride_two_layouts():
    for shape in [(6,), (4, 6), (2, 4, 4)]:
        for colour in (0, 1):
            layout = find_layout(shape, checkerboard(shape, colour))
            assert layout is not None and layout.stride == 2
            assert np.array_equal(np.flatnonzero(layout.member), checkerboard(shape, colour))
            offsets = np.zeros(layout.choices[0].shape, dtype=int) + layout.choices[0]
            # the member of run j' sits at offset choice: its flat index is 2 j' + offset
            assert np.array_equal(2 * np.arange(offsets.size) + offsets.reshape(-1), checkerboard(shape, colour))


def test_stripes_of_three_have_stride_three_layouts():
    shape = (3, 6)
    rows, cols = np.indices(shape)
    for colour in range(3):
        block = np.flatnonzero(((rows + cols) % 3 == colour).reshape(-1))
        layout = find_layout(shape, block)
        assert layout is not None and layout.stride == 3 and len(layout.choices) == 2


@pytest.mark.parametrize("block", [
    np.arange(8),                  # half the grid, but two per run
    np.array([1, 0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20]),  # not ascending
    np.arange(0, 24, 3)[:7],       # does not divide the grid
    np.arange(24),                 # the whole group: plain reshapes already serve it
])
def test_other_blocks_have_no_layout(block):
    assert find_layout((4, 6), block) is None


def test_shift_of_finds_fixed_periodic_offsets_only():
    shape = (4, 6)
    layout = find_layout(shape, checkerboard(shape, 0))
    grid = np.arange(24).reshape(shape)
    sites = np.stack(np.unravel_index(layout.flat_indices, shape))
    right = np.ravel_multi_index((sites[0], (sites[1] + 1) % 6), shape)
    up = np.ravel_multi_index(((sites[0] - 1) % 4, sites[1]), shape)
    everywhere = np.arange(layout.size)
    assert layout.shift_of(right, shape, everywhere) == (0, 1)
    assert layout.shift_of(up, shape, everywhere) == (3, 0)
    # only some rows present (an open boundary): the offset holds on those
    assert layout.shift_of(right[:5], shape, everywhere[:5]) == (0, 1)
    assert layout.shift_of(grid.reshape(-1)[::2][::-1].copy(), shape, everywhere) is None
    assert layout.shift_of(right, (24,), everywhere) is None  # a source of another shape


LATTICES = {
    # per-bond couplings and a per-site field, read through the layout at shifted sites
    # (a lattice with one coupling everywhere would hide a read of the wrong neighbour)
    "ising_field": """
const L = 6
param right[L, L] ~ normal(0, 0.5)
param down[L, L] ~ normal(0, 0.5)
param h[L, L] ~ normal(0, 0.5)
latent s[L, L] : spin
energy coupling[i in 0..L, j in 0..L] = -s[i,j] * (down[i,j] * s[(i+1) % L, j] + right[i,j] * s[i, (j+1) % L])
energy field[i in 0..L, j in 0..L] = -h[i,j] * s[i,j]
""",
    # open boundaries (rows missing at the edge), an observed group, three labels
    "potts_open": """
const N = 6
observed y[N, N] : categorical(3)
latent x[N, N] : categorical(3)
param beta = 0.8
energy data[i in 0..N, j in 0..N] = -1.5 * [x[i,j] == y[i,j]]
energy right[i in 0..N, j in 0..N-1] = -beta * [x[i,j] == x[i,j+1]]
energy down[i in 0..N-1, j in 0..N] = -beta * [x[i,j] == x[i+1,j]]
""",
    # open boundaries in a model linear in each spin: summed local fields with rows missing
    "ising_open": """
const N = 6
latent s[N, N] : spin
param J = 0.5
param h[N, N] ~ normal(0, 0.5)
energy right[i in 0..N, j in 0..N-1] = -J * s[i,j] * s[i,j+1]
energy down[i in 0..N-1, j in 0..N] = -J * s[i,j] * s[i+1,j]
energy field[i in 0..N, j in 0..N] = -h[i,j] * s[i,j]
""",
    # a periodic ring of binary variables: a one-axis grid
    "chain": """
const N = 8
latent b[N] : binary
param w = 0.7
energy pair[i in 0..N] = -w * b[i] * b[(i+1) % N]
energy bias[i in 0..N] = 0.3 * b[i]
""",
    "cube": """
const L = 4
latent s[L, L, L] : spin
param J = 0.3
energy bonds[i in 0..L, j in 0..L, k in 0..L] = -J * s[i,j,k] * (s[(i+1) % L, j, k] + s[i, (j+1) % L, k] + s[i, j, (k+1) % L])
""",
}


def lattice(name: str, backend_name: str = "numpy", dtype: str = "float64"):
    return ebm.loads(LATTICES[name], backend=backend_name, dtype=dtype, seed=1)


@pytest.mark.parametrize("name", list(LATTICES))
def test_colour_classes_of_lattices_are_read_through_their_layout(name):
    graph = lattice(name).graph
    for members in colouring(graph).classes:
        for group, indices in members.items():
            plan = plan_block(graph, group, np.asarray(indices))
            assert plan.layout is not None
            # every template part reads through the layout: no gather, no scatter
            assert all(t.layout is not None for t in plan.templates)
            assert all(target is None for target in plan.targets)
            assert all(a.kind != "gather" for t in plan.templates for at, a in t.access.items()
                       if at not in t.free_everywhere)


@pytest.mark.parametrize("config", [("numpy", "float64"), ("torch", "float64"), ("jax", "float64"),
                                    ("torch", "float32")])
@pytest.mark.parametrize("name", list(LATTICES))
def test_layout_conditionals_match_brute_force(config, name):
    backend_name, dtype = config
    model = lattice(name, backend_name, dtype)
    graph = model.graph
    rng = np.random.default_rng(4)
    state = {}
    for group, variables in graph.variables.items():
        values = variables.domain.values
        state[group] = values[rng.integers(0, len(values), size=(3,) + variables.shape)].astype(float)
    params = reference_init_params(graph, 2)
    for members in colouring(graph).classes:
        for group, indices in members.items():
            check_block(model.compiled, lambda s: reference_energy(graph, s, params), group,
                        np.asarray(indices), state, params, dtype)


@pytest.mark.parametrize("backend_name", ["numpy", "torch", "jax"])
@pytest.mark.parametrize("indices", [
    checkerboard((4, 6), 1),              # a layout
    np.arange(24),                        # the whole group
    np.array([0, 7, 9, 22]),              # a gather and a scatter
], ids=["layout", "whole", "general"])
def test_block_reads_and_writes_match_indexing(backend_name, indices):
    source = "const L = 4\nlatent s[L, 6] : spin\nparam J = 1.0\n" \
             "energy e[i in 0..L, j in 0..6] = -J * s[i,j] * s[i, (j+1) % 6]\n"
    model = ebm.loads(source, backend=backend_name, dtype="float64")
    bk = backend(backend_name, "float64")
    block = model.compiled.gibbs_block("s", indices)
    values = np.random.default_rng(0).normal(size=(3, 4, 6))
    current = bk.to_numpy(block.current(bk.asarray(values)))
    assert np.array_equal(current, values.reshape(3, -1)[:, indices])
    new = np.arange(3 * len(indices), dtype=float).reshape(3, -1) + 100
    written = bk.to_numpy(block.replace(bk.asarray(values), bk.asarray(new)))
    want = values.reshape(3, -1).copy()
    want[:, indices] = new
    assert np.array_equal(written, want.reshape(values.shape))


ISING_4X4 = """
const L = 4
param J = 0.35
param h = 0.1
latent s[L, L] : spin
energy coupling[i in 0..L, j in 0..L] = -J * s[i,j] * (s[(i+1) % L, j] + s[i, (j+1) % L])
energy field[i in 0..L, j in 0..L] = -h * s[i,j]
"""


@pytest.mark.parametrize("backend_name", ["torch", "jax"])
def test_gibbs_through_layouts_matches_enumeration(backend_name):
    # 4x4 periodic Ising: both colour classes have layouts, so every update goes through
    # the strided reads, the masked write and the one-uniform binary draw. 2^16 states are
    # enumerated for the exact mean bond correlation and magnetisation. The last draws of
    # 4000 independent chains after 60 sweeps (the chain mixes in a few sweeps at this
    # coupling) are independent, so their means have plain standard errors; 5 of them
    # leaves a false alarm rate below 1e-6, while reading a wrong neighbour or a wrong
    # sign moves the bond correlation by several tenths.
    from ebmlang.graph.reference import exact_distribution

    model = ebm.loads(ISING_4X4, backend=backend_name, dtype="float64")
    chains = 4000
    samples = model.sample(chains=chains, steps=60, burn_in=59, seed=11, progress=False, method="gibbs")
    assert samples.plan.method_of("discrete") == "gibbs"
    drawn = np.asarray(samples["s"])[:, -1]
    states, probs = exact_distribution(model.graph, model.param_values())
    exact = states["s"]

    def bonds(s):
        return (s * np.roll(s, 1, -1) + s * np.roll(s, 1, -2)).mean(axis=(-1, -2))

    for statistic in (bonds, lambda s: s.mean(axis=(-1, -2))):
        values = statistic(drawn)
        want = float(np.sum(probs * statistic(exact)))
        assert abs(values.mean() - want) < 5 * values.std() / np.sqrt(chains), (values.mean(), want)


@pytest.mark.parametrize("stride", [2, 3])
def test_shifted_reads_equal_indexing_for_any_offset(stride):
    # Stripes (i + j) % stride of a periodic 6 x 6 grid: every offset, including ones that
    # cross runs and wrap around, reads the same cells as plain indexing does.
    from ebmlang.backends.layout import ShiftedRead

    shape = (6, 6)
    rows, cols = np.indices(shape)
    ops = backend("numpy", "float64").ops
    values = np.random.default_rng(1).normal(size=(2,) + shape)
    for colour in range(stride):
        layout = find_layout(shape, np.flatnonzero(((rows + cols) % stride == colour).reshape(-1)))
        sites = np.stack(np.unravel_index(layout.flat_indices, shape))
        for offset in [(0, 1), (0, -1), (1, 0), (-1, 2), (2, 5), (0, 0)]:
            read, masks = ShiftedRead.plan(layout, tuple(d % n for d, n in zip(offset, shape)))
            got = read.read(ops, layout, values.reshape(2, -1), (2,), masks)
            cells = np.ravel_multi_index(tuple((sites[a] + offset[a]) % shape[a] for a in range(2)), shape)
            assert np.array_equal(got, values.reshape(2, -1)[:, cells]), (colour, offset)


def test_packing_a_checkerboard_round_trips():
    from ebmlang.backends.layout import find_packing

    shape = (4, 6)
    layouts = [find_layout(shape, checkerboard(shape, c)) for c in (0, 1)]
    packing = find_packing(layouts)
    assert packing is not None and packing.owner.shape == (4, 3, 2)
    assert find_packing(layouts[:1]) is None  # one colour does not cover the grid
    ops = backend("numpy", "float64").ops
    values = np.random.default_rng(2).normal(size=(3,) + shape)
    classes = packing.pack(ops, lambda c: layouts[c].arrays() | {
        f"layout_choice{k + 1}": m for k, m in enumerate(layouts[c].choices)}, values)
    for c, layout in enumerate(layouts):
        assert np.array_equal(classes[c].reshape(3, -1), values.reshape(3, -1)[:, layout.flat_indices])
    assert np.array_equal(packing.unpack(ops, packing.owner_masks(), classes), values)


@pytest.mark.parametrize("backend_name", ["numpy", "torch", "jax"])
@pytest.mark.parametrize("name", list(LATTICES))
def test_packed_sweeps_equal_dense_sweeps(backend_name, name):
    # The packed carry is only a different layout of the same numbers: from one state and
    # one key, sweeps with and without packing draw the same uniforms for the same
    # variables and must agree exactly.
    from ebmlang.inference.gibbs import build_gibbs_sweep, gibbs_blocks

    model = lattice(name, backend_name, "float64")
    graph, bk = model.graph, model.backend
    blocks = gibbs_blocks(graph, colouring(graph).classes)
    packed = build_gibbs_sweep(model.compiled, blocks)
    dense = build_gibbs_sweep(model.compiled, blocks, pack=False)
    latent = [g for g, v in graph.variables.items() if not v.observed]
    assert set(packed.packed_groups) == set(latent) and dense.packed_groups == ()
    rng = np.random.default_rng(3)
    state = {g: bk.asarray(v.domain.values[rng.integers(0, v.domain.num_values, (4,) + v.shape)].astype(float))
             for g, v in graph.variables.items()}
    results = []
    for sweep in (packed, dense):
        carry, key = sweep.init(state), bk.key(7)
        for _ in range(3):
            key, sweep_key = bk.split(key, 2)
            carry = sweep.step(sweep_key, carry, model.params)
        results.append({g: bk.to_numpy(v) for g, v in sweep.finish(carry).items()})
    for group in latent:
        assert np.array_equal(results[0][group], results[1][group])
        assert not np.array_equal(results[0][group], bk.to_numpy(state[group]))  # it moved


def _plan_summary(plan):
    """Everything a block plan decides, as comparable numpy/tuple values."""
    return [(t.template.name, t.num_rows, sorted((k, np.asarray(v).tolist()) for k, v in t.arrays.items()),
             sorted((str(a.kind), a.shape) for a in t.access.values()), None if target is None else target.tolist())
            for t, target in zip(plan.templates, plan.targets)]


@pytest.mark.parametrize("name", list(LATTICES))
def test_block_planning_in_small_chunks_plans_the_same_blocks(name, monkeypatch):
    # Large lattices are planned in chunks of rows (bounded temporaries); chunks of 3 rows
    # here cross every template's rows many times and must give the very same plan, and
    # the conditionals read through it stay exact.
    import ebmlang.backends.evaluator.conditionals as conditionals
    import ebmlang.backends.layout as layout

    graph = lattice(name).graph
    blocks = [(group, np.asarray(indices)) for members in colouring(graph).classes
              for group, indices in members.items()]
    whole = [_plan_summary(plan_block(graph, group, indices)) for group, indices in blocks]
    monkeypatch.setattr(conditionals, "ROW_CHUNK", 3)
    monkeypatch.setattr(layout, "SHIFT_CHUNK", 3)
    chunked = [_plan_summary(plan_block(graph, group, indices)) for group, indices in blocks]
    assert chunked == whole
    model = lattice(name)
    rng = np.random.default_rng(5)
    state = {g: v.domain.values[rng.integers(0, len(v.domain.values), size=(2,) + v.shape)].astype(float)
             for g, v in graph.variables.items()}
    params = reference_init_params(graph, 2)
    for group, indices in blocks:
        check_block(model.compiled, lambda s: reference_energy(graph, s, params), group, indices, state, params,
                    "float64")
