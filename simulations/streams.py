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


def per_point(gens: list[torch.Generator], valid: torch.Tensor, tail: tuple[int, ...], dtype: torch.dtype,
              draw: str, fill: float) -> torch.Tensor:
    """CPU draws [M, n, *tail] for a batch whose own points per model are valid [M, n] (bool): model m's
    from gens[m], point by point for its own points only (`fill` elsewhere), so they depend on its
    seeds, its points and the step, never on the bundle it is in. `draw`: "normal" or "uniform"."""
    valid = valid.cpu()
    out = torch.full((*valid.shape, *tail), fill, dtype=dtype)
    for m, gen in enumerate(gens):
        own = int(valid[m].sum())
        prefix = bool(valid[m, :own].all())  # its points first (a padded training split): draw in place
        block = out[m, :own] if prefix else torch.empty(own, *tail, dtype=dtype)
        getattr(block, f"{draw}_")(generator=gen)
        if not prefix:
            out[m, valid[m]] = block
    return out
