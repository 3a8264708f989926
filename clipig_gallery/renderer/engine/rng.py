"""Per-image random streams.

Every image in a batch owns a ``torch.Generator`` seeded from its own seed, and
every random draw for that image comes from that generator in a fixed order.
An image therefore sees the same noise, angles and crops whether it is
rendered alone or beside 49 others: batching changes only how the draws are
stacked, never their values.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


class ImageStreams:
    """Random draws for N images, each with ``views`` samples per draw."""

    def __init__(self, seeds: Sequence[int], device: torch.device | str, views: int = 1):
        self.device = torch.device(device)
        self.generators = [_generator(seed, self.device) for seed in seeds]
        self.views = views

    @property
    def count(self) -> int:
        return len(self.generators)

    def with_views(self, views: int) -> ImageStreams:
        """The same generators, drawing ``views`` samples per image."""
        other = object.__new__(ImageStreams)
        other.device, other.generators, other.views = self.device, self.generators, views
        return other

    def uniform(self, *shape: int) -> torch.Tensor:
        """Uniform [0, 1) draws: (N * views, *shape), image-major."""
        return self._draw(torch.rand, shape)

    def normal(self, *shape: int) -> torch.Tensor:
        """Standard normal draws: (N * views, *shape), image-major."""
        return self._draw(torch.randn, shape)

    def _draw(self, fn, shape: tuple[int, ...]) -> torch.Tensor:
        # One call per image keeps each stream independent of the batch; the
        # number of calls grows with N but the work per call does not.
        parts = [
            fn((self.views, *shape), generator=g, device=self.device) for g in self.generators
        ]
        return parts[0] if len(parts) == 1 else torch.cat(parts)


def _generator(seed: int, device: torch.device) -> torch.Generator:
    gen = torch.Generator(device=device)
    gen.manual_seed(int(seed) & 0xFFFF_FFFF_FFFF_FFFF)
    return gen
