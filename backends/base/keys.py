"""Keys for backends without a native key type (numpy, torch): a key is a uint64."""
from __future__ import annotations

import hashlib

import numpy as np

from ebmlang.errors import EbmError


def seed_key(seed: int) -> int:
    """A key from an integer seed."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise EbmError(f"a random seed must be an integer, got {type(seed).__name__}")
    return int(seed) % 2**64


def split_seed_key(key: int, num: int = 2) -> tuple[int, ...]:
    """`num` independent keys derived from `key` by BLAKE2b, eight per digest (the block
    number as salt). A sampler splits keys several times per step: a SeedSequence costs
    about 11 microseconds a split, a digest half of one."""
    seed = (int(key) % 2**64).to_bytes(8, "little")
    words: list[int] = []
    for block in range(0, int(num), 8):
        count = min(8, int(num) - block)
        digest = hashlib.blake2b(seed, digest_size=8 * count, salt=block.to_bytes(16, "little")).digest()
        words.extend(int.from_bytes(digest[8 * i:8 * i + 8], "little") for i in range(count))
    return tuple(words)
