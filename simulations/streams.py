"""Per-model random streams: one CPU generator per model, seeded by that model's own seeds and the name
of what draws from it, so a model's draws depend neither on the bundle it is in nor on torch's global
generator (which torch seeds at random in every process), and two consumers never share a stream."""

from __future__ import annotations

import numpy as np
import torch


def generators(seeds: list[tuple[int, ...]], name: str) -> list[torch.Generator]:
    """One CPU generator per model, model m's seeded by seeds[m] (e.g. its init seed and the training
    phase) and `name` (the consumer's: an estimator's, the router's jitter)."""
    key = int.from_bytes(name.encode()[:8], "little")
    return [torch.Generator().manual_seed(
        int(np.random.SeedSequence([*s, key]).generate_state(1, dtype=np.uint64)[0] >> 1)) for s in seeds]
