r"""The exact solver's ridge path: ``l2_path`` candidates solved from one pass, one chosen by cross-validation.

With ``l2_path`` = :math:`(\lambda^{(1)}, \dots, \lambda^{(A)})` a :class:`~lr_lightning.models.LinearRegression`
with ``solver="exact"`` solves ridge for every candidate from the epoch's merged float64 state, one SVD of
:math:`R_{11}` for all of them (:func:`~lr_lightning.streaming.ridge_path`), scores each by ``l2_selection``, and
keeps the candidate of lowest score (the first of equal ones, scikit-learn's tie rule):

* ``"loo"``: the exact leave-one-out mean squared error, :math:`\frac{1}{N K}\sum_{i,k} (e_{ik} / (1 - h_{ii}))^2`
  with :math:`h_{ii}` row i's leverage (the intercept's :math:`1/N` included). It is what scikit-learn's
  ``RidgeCV(alphas=N * l2_path)`` computes (its ``gcv_mode`` only picks how) on the standardized features, so the
  same strength is chosen and each candidate's score is minus ``RidgeCV``'s ``best_score_`` at it
  (:class:`~lr_lightning.streaming.LeaveOneOut`). The leverages are not in the state: a **second pass** reads the
  training rows again, each DDP rank its shard (the DataModule's
  :meth:`~lr_lightning.data.contract.TrainingData.chunks`), and the ranks' sums of squared errors, (A, K), are
  all-gathered and added in rank order.
* ``"gcv"``: generalized cross-validation (Golub, Heath and Wahba),
  :math:`\frac{\mathrm{RSS}_k / N}{(1 - \operatorname{tr} H / N)^2}` averaged over the K targets, from the state
  alone (:func:`~lr_lightning.streaming.generalized_cross_validation`); no second pass. scikit-learn has no
  estimator that computes it.

Scores are in the targets' own units (never standardized ones). Every rank holds the same merged state and
sums, so every rank makes the same choice. The chosen strength becomes the model's ``l2_strength`` (and its
saved hyperparameter), so ``train_loss``, the penalty and the checkpoint all refer to the chosen objective.

**Logs.** ``l2_strength_chosen`` every epoch; the curve, when it is new to the model (the first epoch: later
epochs solve the same rows to the same curve), as scalars with the candidate's index as the step:
``ridge_path/l2_strength``, ``ridge_path/cv_mse`` (the criterion) and ``ridge_path/train_mse`` (the fit's mean
squared error on the training rows); the TensorBoard dashboard draws it at the end of fit
(:class:`~lr_lightning.dashboard.TensorBoardDashboard`, ``figures/ridge_path`` and a ``ridge_path`` table).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from numbers import Real
from typing import TYPE_CHECKING, Any

import numpy as np

from lr_lightning.data.ranks import Ranks
from lr_lightning.errors import InputError, require
from lr_lightning.streaming import (
    LeastSquaresState,
    LeaveOneOut,
    RidgeSelection,
    StreamingSolution,
    generalized_cross_validation,
    ridge_path,
)

if TYPE_CHECKING:
    from lr_lightning.models.linear import LinearRegression

__all__ = ["SELECTIONS", "check_ridge_path", "choose_strength"]

#: ``l2_selection``'s values: exact leave-one-out (a second pass), generalized cross-validation (the state).
SELECTIONS = ("loo", "gcv")


def _is_strength(value: Any) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(value) and float(value) >= 0


def check_ridge_path(
    l2_path: Sequence[float] | None, l2_selection: str, solver: str, l2_strength: float
) -> list[float] | None:
    """Return ``l2_path`` as a list of floats (``None`` without one) if the options fit together; else InputError.

    Args:
        l2_path: the candidate strengths, each a finite number >= 0, at least one; ``None`` for none.
        l2_selection: one of :data:`SELECTIONS`.
        solver: the model's solver; a path needs ``"exact"``.
        l2_strength: the model's strength: with a path, 0 or one of the candidates (a checkpoint's chosen one),
            as the fit replaces it by the chosen candidate.

    """
    require(isinstance(l2_selection, str) and l2_selection in SELECTIONS, "l2_selection", "loo or gcv", l2_selection)
    if l2_path is None:
        if l2_selection != "loo":
            raise InputError(f"l2_selection {l2_selection!r} chooses among l2_path's strengths: set l2_path too")
        return None
    candidates = isinstance(l2_path, list | tuple) and len(l2_path) > 0 and all(map(_is_strength, l2_path))
    require(candidates, "l2_path", "a non-empty list of finite numbers >= 0", l2_path)
    if solver != "exact":
        raise InputError(
            f"l2_path and l2_selection choose l2_strength in the exact solver: set solver 'exact' (got {solver!r})"
        )
    path = [float(value) for value in l2_path]
    if l2_strength and l2_strength not in path:
        raise InputError(
            f"l2_strength is chosen from l2_path by {l2_selection}: leave it 0, got {l2_strength!r} "
            "(not one of l2_path's values)"
        )
    return path


def choose_strength(
    model: LinearRegression, state: LeastSquaresState, ranks: Ranks, feature_scale: np.ndarray
) -> StreamingSolution:
    """Solve ``model.l2_path`` from ``state``, choose by ``model.l2_selection``, set the model's strength; log.

    Args:
        model: the model being fitted; its ``l2_strength`` (and hyperparameter) becomes the chosen candidate and
            ``ridge_selection`` the :class:`~lr_lightning.streaming.RidgeSelection` (scores (A,), (A, K)).
        state: the merged state of the pass's rows, shifted by the model's buffers ((x - mu, y - t)).
        ranks: the processes sharing the pass (the leave-one-out pass is a collective under DDP).
        feature_scale: sigma (D,), on which the penalty falls.

    Returns:
        The chosen candidate's solution (as :func:`~lr_lightning.streaming.solve` returns it).

    """
    assert model.l2_path is not None
    solutions = ridge_path(state, model.l2_path, model.fit_intercept, feature_scale=feature_scale)
    if model.l2_selection == "gcv":
        selection = generalized_cross_validation(state, model.l2_path, model.fit_intercept, feature_scale)
    else:
        selection = _leave_one_out(model, state, ranks, feature_scale)
    chosen = selection.l2_strength_
    model.l2_strength = chosen
    model.hparams["l2_strength"] = chosen  # a checkpoint reloads with the chosen objective
    model.ridge_selection = selection
    model.log("l2_strength_chosen", chosen, on_step=False, on_epoch=True, sync_dist=True)
    _log_curve(model, selection, [solution.mse_ for solution in solutions])
    return solutions[selection.best_index_]


def _leave_one_out(
    model: LinearRegression, state: LeastSquaresState, ranks: Ranks, feature_scale: np.ndarray
) -> RidgeSelection:
    """Exact leave-one-out from a second pass over the training rows, each rank its shard, merged in rank order."""
    data = model.training_data()
    if data is None:
        raise InputError(
            "l2_selection 'loo' reads the training rows a second time and needs one of lr_lightning's DataModules; "
            "use l2_selection 'gcv'"
        )
    assert model.l2_path is not None
    try:
        accumulator = LeaveOneOut(state, model.l2_path, model.fit_intercept, feature_scale)
    except ValueError as error:  # fewer than 2 training rows
        raise InputError(f"l2_selection 'loo': {error}") from None
    strengths, zeros = accumulator.l2_strengths, np.zeros_like(accumulator.squared_error_sum)  # (A,), (A, K)
    total = accumulator.merge_arrays({"n_rows": 0, "l2_strengths": strengths, "squared_error_sum": zeros})
    feature_shift = model.feature_mean.detach().double().cpu().numpy()  # (D,), as the first pass
    target_shift = model.target_mean.detach().double().cpu().numpy()  # (K,)
    for features, targets, _ in data.chunks("train", ranks.rank, ranks.world_size):  # unweighted (ExactFit)
        shifted = np.asarray(targets, dtype=np.float64).reshape(len(features), -1) - target_shift
        accumulator.update(np.asarray(features, dtype=np.float64) - feature_shift, shifted)
    if ranks.all_gather is None:
        total = total.merge(accumulator)
    else:
        vector = np.concatenate([[float(accumulator.n_rows)], accumulator.squared_error_sum.ravel()])
        for row in ranks.all_gather(vector):  # (world_size, 1 + A K), added in rank order on every rank
            sums = row[1:].reshape(zeros.shape)
            arrays = {"n_rows": round(row[0]), "l2_strengths": strengths, "squared_error_sum": sums}
            total = total.merge_arrays(arrays)
    try:
        return total.result()
    except ValueError as error:  # the first pass was cut short (max_steps, limit_train_batches)
        raise InputError(
            f"l2_selection 'loo' needs the epoch's whole pass over the training rows: {error} (use 'gcv')"
        ) from None


def _log_curve(model: LinearRegression, selection: RidgeSelection, train_mse: list[float]) -> None:
    """Log the path's scalars, the candidate's index as the step, when the curve is not the one logged last."""
    scores = selection.scores_
    last = model._logged_ridge_curve
    if last is not None and last.shape == scores.shape and np.allclose(last, scores, rtol=1e-12, atol=0.0):
        return
    model._logged_ridge_curve = scores.copy()
    trainer = model._trainer
    if trainer is None or not trainer.is_global_zero:
        return
    for logger in trainer.loggers:
        for index, (strength, score) in enumerate(zip(selection.l2_strengths_, scores, strict=True)):
            metrics = {"ridge_path/l2_strength": float(strength), "ridge_path/cv_mse": float(score)}
            metrics["ridge_path/train_mse"] = train_mse[index]
            logger.log_metrics(metrics, step=index)
