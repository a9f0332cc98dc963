"""Training-step seeds and key splitting: deterministic, distinct, and the same whichever
way an epoch asks for them (the fused JAX epoch takes all of an epoch's seeds at once, the
step-by-step path reads them one by one)."""
from __future__ import annotations

import numpy as np

from ebmlang.backends.base.keys import split_seed_key
from ebmlang.learning.dataset import step_seed, step_seeds


def test_an_epochs_step_seeds_do_not_depend_on_how_many_are_asked_for():
    all_of_them = step_seeds(3, 2, 100)
    assert np.array_equal(step_seeds(3, 2, 10), all_of_them[:10])
    assert len(set(all_of_them.tolist())) == 100
    # Other epochs, other runs and the evaluation key draw other numbers.
    assert not set(all_of_them.tolist()) & set(step_seeds(3, 3, 100).tolist())
    assert not set(all_of_them.tolist()) & set(step_seeds(4, 2, 100).tolist())
    assert step_seed(3, 2, 0) not in set(all_of_them.tolist())


def test_split_keys_are_deterministic_distinct_uint64s_across_digest_blocks():
    for count in (1, 2, 3, 8, 9, 20):
        keys = split_seed_key(12345, count)
        assert keys == split_seed_key(12345, count) and len(set(keys)) == count
        assert all(0 <= k < 2 ** 64 for k in keys)
    # Keys of a split never repeat the parent, and neighbouring parents share none.
    assert 12345 not in split_seed_key(12345, 20)
    assert not set(split_seed_key(12345, 20)) & set(split_seed_key(12346, 20))
    # Their low 32 bits (all that torch's CPU generator reads) are spread as well.
    low = [k & 0xFFFFFFFF for parent in range(200) for k in split_seed_key(parent, 4)]
    assert len(set(low)) == len(low)


def test_jax_seeds_that_differ_above_32_bits_give_different_keys():
    import jax

    from ebmlang.backends import get_backend

    backend = get_backend("jax")
    low, high = backend.key(3), backend.key(3 + 2 ** 32)
    assert not (jax.random.key_data(low) == jax.random.key_data(high)).all()
    # Seeds below 2^32 keep the keys they always had.
    assert (jax.random.key_data(backend.key(7)) == jax.random.key_data(jax.random.key(7))).all()
    assert (jax.random.key_data(backend.key(3 + 2 ** 64)) == jax.random.key_data(low)).all()
