"""Lightning callbacks of lr_lightning, and what they read from a model and its data.

They read the data through the data contract (:class:`~lr_lightning.data.contract.TrainingData`) and the model
through :class:`LinearModel`, which the package's models satisfy; nothing here imports :mod:`lr_lightning.models`
(the models import :class:`OptimalityGap` from here).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import lightning.pytorch as pl
import numpy as np
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities import rank_zero_info
from torch import Tensor

from lr_lightning.closed_form import LeastSquaresSolution, through_point
from lr_lightning.data.base import trainer_datamodule
from lr_lightning.data.contract import Task, TrainingData
from lr_lightning.streaming import LeastSquaresState, RidgeSelection, optimality_gap

__all__ = ["FitCertificate", "LinearModel", "OptimalityGap", "RidgePathModel", "reachable_least_squares"]


@runtime_checkable
class LinearModel(Protocol):
    """What the callbacks read from a model: the package's models (:mod:`lr_lightning.models`) have it all.

    Attributes:
        task: ``"regression"`` or ``"classification"``, as the data's (:data:`lr_lightning.data.contract.TASKS`).
        feature_names: the D feature names.

    """

    task: Task
    feature_names: list[str]

    @property
    def fit_intercept(self) -> bool:
        """Whether the model learns an intercept."""
        ...

    @property
    def output_names(self) -> list[str]:
        """K target names (regression) or C class names (classification)."""
        ...

    @property
    def coef_(self) -> np.ndarray:
        """Weights in original units (K, D), float64."""
        ...

    @property
    def intercept_(self) -> np.ndarray:
        """Intercepts in original units (K,), float64."""
        ...

    def __call__(self, features: Tensor) -> Tensor:
        """Raw features (N, D) -> predictions (N, K) in the targets' units, or class probabilities (N, C)."""
        ...


@runtime_checkable
class RidgePathModel(Protocol):
    """A model that chooses its ridge strength from a path (the exact solver's ``l2_path``), for the dashboard.

    Attributes:
        ridge_selection: the last fit's candidates, scores and choice, ``None`` without a path (or after loading).
        l2_selection: how the candidate was chosen, ``"loo"`` or ``"gcv"``.

    """

    ridge_selection: RidgeSelection | None
    l2_selection: str

    @property
    def output_names(self) -> list[str]:
        """K target names."""
        ...


@runtime_checkable
class FitCertificate(Protocol):
    """A callback that can say, after ``fit``, how far the model ended from its optimum (the end-of-fit output)."""

    def summary_line(self) -> str | None:
        """One line for the end of ``fit``, ``None`` when there is nothing to certify."""
        ...


def reachable_least_squares(data: TrainingData, fit_intercept: bool) -> LeastSquaresSolution | None:
    r"""Return the least-squares fit of the training rows that a linear regression on ``data`` can reach.

    The model is :math:`y = s \odot (W (x - \mu) / \sigma + b) + t` in raw units, with the data's scaling
    (:meth:`~lr_lightning.data.contract.TrainingData.scaling_statistics`): with a bias it is any affine map, so
    its optimum is least squares with an intercept; without one it passes through :math:`(\mu, t)`: least squares
    without an intercept when neither features nor targets are centred, otherwise (centred features) the fit with
    an intercept moved through that point (:func:`~lr_lightning.closed_form.through_point`). Either way the one
    solve is the data's own, from its streamed state (:meth:`~lr_lightning.data.contract.TrainingData.least_squares`),
    so every reader of a fit shares it, in memory, on disk and under DDP.

    Returns:
        The solution, or ``None`` for data without a state (class labels, too wide), or for a model without a
        bias on raw features whose targets are centred (``standardize_targets`` without ``standardize``), which no
        solve of the data gives.

    """
    if fit_intercept:
        return data.least_squares(fit_intercept=True)
    statistics = data.scaling_statistics()
    centred, shifted = bool(statistics.feature_mean.any()), bool(statistics.target_mean.any())
    if not centred:
        return None if shifted else data.least_squares(fit_intercept=False)
    solution = data.least_squares(fit_intercept=True)
    if solution is None:
        return None
    mean, shift = (t.double().cpu().numpy() for t in (statistics.feature_mean, statistics.target_mean))
    return through_point(solution, mean, shift)


class OptimalityGap(Callback):
    r"""Log how far a linear regression is from least squares: ``optimality_gap`` after every training epoch.

    .. math::

        \text{gap} = \frac{1}{N K} \sum_{i=1}^{N} \lVert y_i - \hat{y}_i \rVert^2
                    - \min_{W, b} \frac{1}{N K} \sum_{i=1}^{N} \lVert y_i - (W x_i + b) \rVert^2,

    both over the *whole* training split, in the targets' units, for the weights as they are at the end of the
    epoch (the epoch's ``train_loss`` would be a poorer measure: it averages losses taken before each step, over
    batches that saw different weights). Nothing is read per epoch: once per fit, at the first epoch's end, one
    streaming pass folds the training rows into a float64 least-squares state (or the exact solver's pass shares
    its own) (:meth:`~lr_lightning.data.contract.TrainingData.
    least_squares_state`: a QR of ``[X, Y]``, each DDP rank reading its shard, in memory or on disk), which gives
    the optimum (:func:`reachable_least_squares`: with an intercept when the model has one) and, for any weights,
    the exact gap as a sum of squares (:func:`~lr_lightning.streaming.optimality_gap`), O((D + K)² K) per epoch.

    The gap is >= 0 and reaches 0 at the least-squares fit; the last epoch's is the fit's **certificate**
    (:attr:`certificate`), printed at the end of fit. Penalized models (``l1_strength``, ``l2_strength``)
    converge to a positive gap, by design. ``relative_optimality_gap`` (gap divided by the optimum) is logged
    too when the optimum is above zero, so "within 0.1%" reads as ``<= 0.001``. Models that are not least-squares
    regressions (:class:`~lr_lightning.models.LogisticRegression`) and data without the data contract are skipped
    with a note.

    Attributes:
        certificate: the last logged ``(optimality_gap, relative_optimality_gap or None)``, or ``None``.

    """

    def __init__(self) -> None:
        self.optimum: LeastSquaresSolution | None = None
        self.certificate: tuple[float, float | None] | None = None
        self._state: LeastSquaresState | None = None
        self._applies = False  # a regression on lr_lightning's data whose reference is not taken yet

    @property
    def optimum_mse(self) -> float | None:
        """The least-squares optimum's mean squared error over the training rows (``None`` when skipped)."""
        return None if self.optimum is None else self.optimum.mse_

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Forget the last fit's reference; say once if this fit has none (the model or the data is not ours)."""
        self.optimum, self._state, self.certificate = None, None, None
        self._applies = False
        data = trainer_datamodule(trainer)
        if not isinstance(data, TrainingData) or not isinstance(pl_module, LinearModel):
            rank_zero_info("OptimalityGap: skipped, the model or the data is not one of lr_lightning's")
        elif pl_module.task != "regression":
            rank_zero_info(f"OptimalityGap: skipped, {type(pl_module).__name__} is not a least-squares regression")
        else:
            self._applies = True

    def _take_reference(self, trainer: pl.Trainer, pl_module: LinearModel) -> None:
        """Take the data's least-squares state and the optimum the model can reach (once per fit).

        At the first epoch's end, not at the start of fit: a pass solver (``solver: exact``) has then streamed the
        rows and shared its state, so the rows are not read a second time. A collective under DDP: every rank
        runs this hook.
        """
        self._applies = False
        data = trainer_datamodule(trainer)
        assert isinstance(data, TrainingData)
        state = data.least_squares_state(distributed=True)
        solution = reachable_least_squares(data, pl_module.fit_intercept) if state is not None else None
        if state is None or solution is None:
            reason = "the data is too wide for a reference" if state is None else "no closed form for this scaling"
            rank_zero_info(f"OptimalityGap: skipped, {reason}")
            return
        self.optimum, self._state = solution, state

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Log ``optimality_gap`` (and ``relative_optimality_gap``) for the weights at the end of the epoch."""
        if self._applies:
            assert isinstance(pl_module, LinearModel)
            self._take_reference(trainer, pl_module)
        if self.optimum is None or self._state is None:
            return
        assert isinstance(pl_module, LinearModel)
        gap = optimality_gap(self._state, pl_module.coef_, pl_module.intercept_, self.optimum)
        # Every rank holds the merged state and computes the same value; sync_dist only averages equal numbers.
        pl_module.log("optimality_gap", gap, on_step=False, on_epoch=True, sync_dist=True)
        relative = None
        if self.optimum.mse_ > 1e-12:  # an exact fit (the 4-point line) has an optimum of ~1e-30: no ratio
            relative = gap / self.optimum.mse_
            pl_module.log("relative_optimality_gap", relative, on_step=False, on_epoch=True, sync_dist=True)
        self.certificate = (gap, relative)

    def summary_line(self) -> str | None:
        """Return the certificate of the fit: the last epoch's gap, and what it means."""
        if self.certificate is None or self._state is None:
            return None
        gap, relative = self.certificate
        ratio = f" (relative {relative:.3g})" if relative is not None else ""
        return (
            f"Certificate: optimality gap {gap:.3g}{ratio}: the training MSE minus the exact least-squares optimum "
            f"over the {self._state.n_rows} training rows"
        )
