r"""Linear regression: one or several real-valued targets, mean squared error."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch
from lightning.pytorch.callbacks import Callback
from torch import Tensor
from torch.nn import functional as F
from torchmetrics import MetricCollection

from lr_lightning.callbacks import OptimalityGap
from lr_lightning.data.contract import ScalingStatistics, Task, TrainingData
from lr_lightning.errors import InputError
from lr_lightning.models.base import LinearModelBase
from lr_lightning.models.exact_fit import ExactFit
from lr_lightning.models.ridge_selection import check_ridge_path
from lr_lightning.models.solvers import check_solver
from lr_lightning.models.weighted_metrics import WeightedMeanAbsoluteError, WeightedMeanSquaredError, WeightedR2Score
from lr_lightning.models.weighting import weighted_mean
from lr_lightning.streaming import RidgeSelection
from lr_lightning.summary import inference_summary

__all__ = ["LinearRegression"]


class LinearRegression(LinearModelBase):
    r"""Least-squares linear regression :math:`\hat{y} = W x + b` by gradient descent or exactly.

    The loss is the mean-reduced squared error over the B rows and K targets of a batch,

    .. math::

        L(W, b) = \frac{1}{B K} \sum_{i=1}^{B} \lVert \tilde{y}_i - (W \tilde{x}_i + b) \rVert_2^2,

    on standardized features :math:`\tilde{x}` and on targets :math:`\tilde{y}` that are standardized only when
    the DataModule was asked to (``standardize_targets``); otherwise :math:`\tilde{y} = y` and the loss is the
    plain MSE in the targets' units. Metrics (MSE, MAE, R²) are always computed in the targets' units.

    With row weights :math:`w_i` (``weights`` of the DataModule) the mean over rows is weighted,

    .. math::

        L(W, b) = \frac{1}{K \sum_i w_i} \sum_{i=1}^{B} w_i \lVert \tilde{y}_i - (W \tilde{x}_i + b) \rVert_2^2,

    whose minimizer is scikit-learn's ``LinearRegression().fit(X, y, sample_weight=w)`` (``Ridge`` with the
    penalties' mapping, N read as :math:`\sum_i w_i`), and MSE, MAE and R² are weighted as scikit-learn's
    ``mean_squared_error``, ``mean_absolute_error`` and ``r2_score`` with ``sample_weight``
    (:mod:`lr_lightning.models.weighted_metrics`).

    Args:
        in_features: D, the number of features (the CLI links it from ``data.num_features``).
        out_features: K, the number of targets (linked from ``data.num_targets``).
        target_names: names of the K targets (linked from the data); name the prediction columns.
        optimality_gap: log ``optimality_gap`` every epoch (:class:`~lr_lightning.callbacks.OptimalityGap`). It
            needs the least-squares fit of the training split, solved once per fit (about 3 s for
            1,000,000 x 100), so a benchmark of raw speed may turn it off.
        solver: ``"gradient"`` (the default): train the layer with the optimizer; ``"exact"``: solve least
            squares or ridge in closed form from one float64 pass over the training rows per epoch, merged across
            DDP ranks, with no optimizer step (one epoch is a whole fit; later ones give the same weights;
            ``l1_strength`` must be 0): see :mod:`lr_lightning.models.exact_fit`.
        l2_path: the exact solver's ridge path: candidate ``l2_strength`` values (A of them, each >= 0), all
            solved from the epoch's one pass; the one that ``l2_selection`` scores lowest becomes ``l2_strength``
            (and the saved hyperparameter, so a checkpoint reloads with it). ``None`` (the default): solve
            ``l2_strength`` alone. Needs ``solver="exact"``; ``l2_strength`` must then be 0 (or, as a checkpoint
            saves it, one of the candidates): the fit replaces it. See :mod:`lr_lightning.models.ridge_selection`.
        l2_selection: how ``l2_path``'s candidate is chosen: ``"loo"`` (the default), the exact leave-one-out
            mean squared error, scikit-learn's ``RidgeCV(alphas=N * l2_path)`` on standardized features (a second
            pass over the training rows); ``"gcv"``, generalized cross-validation from the pass's state alone.
        kwargs: the options every model shares, ``bias``, ``feature_names``, ``l1_strength``, ``l2_strength``,
            ``init``, ``init_std`` and ``optimizer``: see :class:`~lr_lightning.models.base.LinearModelBase`
            (``optimizer`` builds the optimizer from the parameters; the CLI's ``optimizer:`` group replaces it).

    With penalties the objective is the loss above plus the weight penalty of :mod:`lr_lightning.penalties`,
    whose docstring gives the scikit-learn estimators (``Ridge``, ``Lasso``, ``ElasticNet``) with the same minimizer.

    Buffers: ``feature_mean``/``feature_scale`` of shape (D,), ``target_mean``/``target_scale`` of shape (K,).

    Attributes:
        coef_: weights in original units, shape (K, D).
        intercept_: intercepts in original units, shape (K,).
        ridge_selection: with ``l2_path``, the last fit's :class:`~lr_lightning.streaming.RidgeSelection`:
            ``l2_strengths_`` (A,), ``scores_`` (A,) and ``scores_per_target_`` (A, K) in the targets' units,
            ``best_index_`` and ``l2_strength_``; ``None`` otherwise (a loaded model keeps only the choice).

    """

    task: ClassVar[Task] = "regression"

    # Buffers, registered in __init__ (see AffineModel's feature_mean).
    target_mean: Tensor
    target_scale: Tensor

    def __init__(
        self,
        in_features: int,
        out_features: int = 1,
        target_names: list[str] | None = None,
        optimality_gap: bool = True,
        solver: str = "gradient",
        l2_path: list[float] | None = None,
        l2_selection: str = "loo",
        **kwargs: Any,
    ) -> None:
        if target_names is not None and len(target_names) != out_features:
            raise InputError(f"target_names has {len(target_names)} names but out_features={out_features}")
        self.target_names = list(target_names) if target_names else [f"y{i}" for i in range(out_features)]
        super().__init__(in_features, out_features, **kwargs)
        self.register_buffer("target_mean", torch.zeros(out_features))
        self.register_buffer("target_scale", torch.ones(out_features))
        self.solver = check_solver(solver, "exact", self.l1_strength, "least squares and ridge in closed form")
        # The exact solver steps no optimizer: Lightning's manual optimization, whose steps it never takes.
        self.automatic_optimization = not self.streams_training_rows
        self.l2_path = check_ridge_path(l2_path, l2_selection, self.solver, self.l2_strength)
        self.l2_selection = l2_selection
        if self.l2_path is not None:
            self.hparams["l2_path"] = list(self.l2_path)  # plain floats, whatever sequence was given
        #: The last fit's candidates, scores and choice (``None`` without ``l2_path``, and after loading).
        self.ridge_selection: RidgeSelection | None = None
        self._logged_ridge_curve: np.ndarray | None = None

    def configure_callbacks(self) -> list[Callback]:
        """Log ``optimality_gap`` (training MSE minus least squares') every epoch, with or without the CLI."""
        return ([OptimalityGap()] if self.hparams["optimality_gap"] else []) + inference_summary(self)

    def start_pass(self) -> ExactFit:
        """Return the exact solver's epoch: a float64 streaming QR of the training rows, solved after the last chunk."""
        return ExactFit(self)

    def check_training_data(self, data: TrainingData) -> None:
        """Besides the task, refuse ``l2_path`` on weighted rows (its leave-one-out and GCV scores are unweighted)."""
        super().check_training_data(data)
        if self.l2_path is not None and data.weighted:
            raise InputError(
                "l2_path: choosing l2_strength by leave-one-out or GCV does not take sample weights; set one "
                "l2_strength, or remove the data's weights"
            )

    def configure_metrics(self) -> MetricCollection:
        """MSE, MAE and R² per target, rows weighted (their means over targets are what ``val_mse`` etc. report)."""
        num_outputs = len(self.target_names)
        return MetricCollection(
            {
                "mse": WeightedMeanSquaredError(num_outputs=num_outputs),
                "mae": WeightedMeanAbsoluteError(num_outputs=num_outputs),
                "r2": WeightedR2Score(num_outputs=num_outputs),
            }
        )

    @property
    def output_names(self) -> list[str]:
        """The target names."""
        return self.target_names

    def output_affine(self) -> tuple[Tensor, Tensor]:
        """Target scale and mean, shape (K,) each."""
        return self.target_scale, self.target_mean

    def set_scaling(self, statistics: ScalingStatistics) -> None:
        """Store feature (D,) and target (K,) scaling fitted by the DataModule."""
        super().set_scaling(statistics)
        target_mean, target_scale = statistics.target_mean, statistics.target_scale
        if target_mean.shape != self.target_mean.shape or target_scale.shape != self.target_scale.shape:
            raise InputError(
                f"the data has {tuple(target_mean.shape)[-1]} targets but the model has "
                f"out_features={self.target_mean.shape[0]}"
            )
        self.store_buffer("target_mean", target_mean)
        self.store_buffer("target_scale", target_scale)

    def compute_loss(self, outputs: Tensor, targets: Tensor, weights: Tensor | None = None) -> Tensor:
        """Mean squared error between outputs (B, K) and the (scaled) targets (B, K), rows weighted by (B,)."""
        scaled_targets = (targets - self.target_mean) / self.target_scale  # (B, K), identity by default
        if weights is None:
            return F.mse_loss(outputs, scaled_targets)
        row_losses = F.mse_loss(outputs, scaled_targets, reduction="none").mean(dim=-1)  # (B, K) -> (B,)
        return weighted_mean(row_losses, weights)

    def decode(self, outputs: Tensor) -> Tensor:
        """Map outputs (B, K) in scaled units to predictions (B, K) in the targets' units."""
        return outputs * self.target_scale + self.target_mean
