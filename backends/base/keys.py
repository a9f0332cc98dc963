"""Keys for backends without a native key type (numpy, torch): a key is a uint64."""
from __future__ import annotations

import numpy as np

from ebmlang.errors import EbmError


def seed_key(seed: int) -> int:
    """A key from an integer seed."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise EbmError(f"a random seed must be an integer, got {type(seed).__name__}")
    return int(seed) % 2**64


def split_seed_key(key: int, num: int = 2) -> tuple[int, ...]:
    """`num` independent keys derived from `key` (numpy SeedSequence hashing)."""
    words = np.random.SeedSequence(int(key)).generate_state(num, dtype=np.uint64)
    return tuple(int(w) for w in words)
