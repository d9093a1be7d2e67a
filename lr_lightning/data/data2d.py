r"""The Data2D dataset of the course notebooks, with the notebook's bug fixed."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from lr_lightning.data.base import InMemoryDataModule
from lr_lightning.data.contract import ArrayData
from lr_lightning.errors import require

__all__ = ["Data2DDataModule"]


class Data2DDataModule(InMemoryDataModule):
    r"""Noisy samples of the plane :math:`f(x) = x W + b` on a grid, as in the multi-output notebook.

    Every one of the ``in_dim`` input columns is the same ``linspace(-xlim, xlim, n_samples)``, the weights are
    :math:`W_{ij} = (-1)^j` (shape (in_dim, out_dim)) and the bias :math:`b_j = (-1)^j`, so the targets are

    .. math::

        y_{nj} = (-1)^j \Big(1 + \sum_i x_{ni}\Big) + \varepsilon_{nj}, \qquad \varepsilon \sim N(0, \text{noise}^2),

    of shape (n_samples, out_dim). The notebook built its targets from ``x`` instead of ``f``, which made the
    "targets" a noisy copy of the inputs; here they are ``f(x) + noise``.

    Because the input columns are identical, the design is rank 1 when ``in_dim > 1``: only the sum of each
    output's weights is identifiable, so a fit recovers :math:`\sum_i W_{ij} = (-1)^j \cdot` ``in_dim`` and the
    bias, not the individual weights (the closed-form solver warns about the rank).

    Args:
        n_samples: rows on the grid (>= 2).
        in_dim: D, the number of input columns.
        out_dim: K, the number of targets.
        xlim: the grid runs over [-xlim, xlim].
        noise: standard deviation of the Gaussian noise on the targets.
        batch_size: rows per batch (the notebook used 2).
        kwargs: the options every DataModule shares (``val_fraction``, ``test_fraction``, ``standardize``, ``seed``,
            ...); ``seed`` also draws the noise, as documented in :class:`~lr_lightning.data.base.InMemoryDataModule`.

    """

    def __init__(
        self,
        n_samples: int = 21,
        in_dim: int = 2,
        out_dim: int = 2,
        xlim: float = 1.0,
        noise: float = 0.1,
        batch_size: int = 2,
        **kwargs: Any,
    ) -> None:
        super().__init__(batch_size=batch_size, **kwargs)
        require(n_samples >= 2, "n_samples", ">= 2", n_samples)
        require(in_dim >= 1, "in_dim", ">= 1", in_dim)
        require(out_dim >= 1, "out_dim", ">= 1", out_dim)
        require(0 < xlim < math.inf, "xlim", "> 0 and finite", xlim)
        require(0 <= noise < math.inf, "noise", ">= 0 and finite", noise)
        self.n_samples = n_samples
        self.in_dim = in_dim
        self.out_dim = out_dim
        self.xlim = xlim
        self.noise = noise

    @property
    def true_weight(self) -> np.ndarray:
        """W of shape (in_dim, out_dim), ``W[i, j] = (-1)**j``."""
        signs = (-1.0) ** np.arange(self.out_dim)
        return np.tile(signs, (self.in_dim, 1))

    @property
    def true_bias(self) -> np.ndarray:
        """B of shape (out_dim,), ``b[j] = (-1)**j``."""
        return (-1.0) ** np.arange(self.out_dim)

    def load_arrays(self) -> ArrayData:
        """Build the grid X (N, in_dim) and the targets f(X) + noise (N, out_dim)."""
        grid = np.linspace(-self.xlim, self.xlim, self.n_samples)
        features = np.repeat(grid[:, None], self.in_dim, axis=1)  # (N, in_dim), identical columns
        clean = features @ self.true_weight + self.true_bias  # (N, out_dim)
        noise = np.random.default_rng(self.seed).normal(0.0, self.noise, size=clean.shape)
        return ArrayData(
            features=features,
            targets=clean + noise,
            feature_names=[f"x{i}" for i in range(self.in_dim)],
            target_names=[f"y{j}" for j in range(self.out_dim)],
            source=f"Data2D(n_samples={self.n_samples}, in_dim={self.in_dim}, out_dim={self.out_dim})",
        )
