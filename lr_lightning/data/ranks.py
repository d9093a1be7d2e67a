"""The processes a streaming pass is shared by: this rank, how many there are, and how to gather their results.

Statistics over a split (moments, the least-squares state, the Newton solver's sums) are computed by each rank
over its own shard and gathered in rank order, so every rank ends with the same numbers. One process is the case
of one rank.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import lightning.pytorch as pl
import numpy as np
import torch

__all__ = ["Ranks"]


@dataclass(frozen=True)
class Ranks:
    """A process's rank among ``world_size``, and ``all_gather`` when there are several.

    Attributes:
        rank: this process's global rank.
        world_size: the number of processes sharing the pass.
        all_gather: gathers one float64 vector from every rank, in rank order, into shape (world_size, length);
            ``None`` for a single process.

    """

    rank: int = 0
    world_size: int = 1
    all_gather: Callable[[np.ndarray], np.ndarray] | None = None

    @classmethod
    def of(cls, trainer: pl.Trainer | None) -> Ranks:
        """Return the ranks of ``trainer``'s strategy once its process group is up; a single process otherwise."""
        initialized = torch.distributed.is_available() and torch.distributed.is_initialized()
        if trainer is None or trainer.world_size == 1 or not initialized:
            return cls()
        world_size = trainer.world_size

        def all_gather(vector: np.ndarray) -> np.ndarray:
            # torch.distributed itself: Lightning's strategy.all_gather goes through a deprecated torch function
            # that warns on every call.
            tensor = torch.from_numpy(np.ascontiguousarray(vector, dtype=np.float64)).to(trainer.strategy.root_device)
            gathered = [torch.empty_like(tensor) for _ in range(world_size)]
            torch.distributed.all_gather(gathered, tensor)
            return torch.stack(gathered).cpu().double().numpy()

        return cls(trainer.global_rank, world_size, all_gather)

    def sum(self, vector: np.ndarray) -> np.ndarray:
        """Return the sum of every rank's float64 ``vector``, added in rank order (a collective under DDP)."""
        return vector if self.all_gather is None else self.all_gather(vector).sum(axis=0)
