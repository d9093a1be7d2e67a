r"""The regression models' exact solver (``solver="exact"``): least squares or ridge in one pass, no optimizer.

Each training batch folds into a float64 :class:`~lr_lightning.streaming_least_squares.LeastSquaresState` (a
streaming QR, O((D + K)²) memory whatever N). After the epoch's last batch, and so before validation and before
the ``on_train_epoch_end`` hooks (the optimality gap, checkpoints), the states of all DDP ranks are all-gathered
and merged in rank order, solved by :func:`~lr_lightning.streaming_least_squares.solve` and written into the
layer, so that the model's predictions in raw units are the solution's.

**What is solved.** The model is :math:`\hat{y} = s \odot (W (x - \mu) / \sigma + b) + t` with the scaling
buffers (:math:`\mu, \sigma` of the features, :math:`t, s` of the targets). Batches enter the state shifted by
the buffers, :math:`(x - \mu, y - t)`, and the solve is the model's own problem: with a bias, least squares (or
ridge) with an intercept (the shift changes nothing); without one, the fit through :math:`(\mu, t)`, which is
all the layer can reach (plain least squares without an intercept when nothing is centred). ``l2_strength``
means what it means for the gradient solver (:mod:`lr_lightning.penalties`): the penalty falls on the weights
of the standardized features, ``feature_scale=`` :math:`\sigma`; target scaling does not change the minimizer.
L1 has no closed form and is refused.

**Epochs.** Every epoch accumulates afresh and solves again: the same rows give the same solution (to rounding,
as the batch order may differ), so epochs after the first leave the weights as they are. One epoch is a fit.

**Steps.** No optimizer steps (Lightning's manual optimization, never stepping); each accumulated batch is
counted as a step of ``trainer.global_step``, so checkpoints, ``max_steps`` and logs see progress as they do
for gradient training.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

import lightning.pytorch as pl
import numpy as np
import torch
from torch import Tensor

from lr_lightning.closed_form import RankDeficiencyWarning
from lr_lightning.data.ranks import Ranks
from lr_lightning.errors import InputError, require
from lr_lightning.streaming_least_squares import LeastSquaresState, merge_all, solve

if TYPE_CHECKING:
    from lr_lightning.models.linear import LinearRegression

__all__ = ["SOLVERS", "ExactFit", "check_solver", "count_step", "gather_states"]

#: The values of the regression models' ``solver`` option.
SOLVERS = ("gradient", "exact")


def check_solver(solver: str, l1_strength: float) -> str:
    """Return ``solver`` if it is one of :data:`SOLVERS` and fits the penalties; raise an ``InputError`` if not."""
    require(isinstance(solver, str) and solver in SOLVERS, "solver", f"one of {', '.join(SOLVERS)}", solver)
    if solver == "exact" and l1_strength:
        raise InputError(
            f"solver 'exact' solves least squares and ridge in closed form and L1 has none: l1_strength must be 0 "
            f"with it, got {l1_strength!r} (use solver 'gradient' for an L1 penalty)"
        )
    return solver


def count_step(trainer: pl.Trainer) -> None:
    """Count one step of ``trainer.global_step`` under manual optimization without stepping an optimizer.

    ``global_step`` reads the manual-optimization loop's step counter, which only an optimizer step advances;
    without steps, ModelCheckpoint would see no progress and save nothing.
    """
    progress = trainer.fit_loop.epoch_loop.manual_optimization.optim_step_progress
    progress.increment_ready()
    progress.increment_completed()


def _all_gather(vector: np.ndarray, trainer: pl.Trainer) -> np.ndarray:
    """Gather a float64 vector from every rank in rank order, (world_size, length).

    torch.distributed itself: Lightning's ``strategy.all_gather`` goes through a deprecated torch function that
    warns on every call.
    """
    tensor = torch.from_numpy(vector).to(trainer.strategy.root_device)
    gathered = [torch.empty_like(tensor) for _ in range(trainer.world_size)]
    torch.distributed.all_gather(gathered, tensor)
    return torch.stack(gathered).cpu().double().numpy()


def gather_states(state: LeastSquaresState, trainer: pl.Trainer | None) -> LeastSquaresState:
    """Return the merge of every rank's ``state`` in rank order (``state`` itself for a single process)."""
    if trainer is None or Ranks.of(trainer).all_gather is None:
        return state
    arrays = state.to_arrays()
    vector = np.concatenate([[float(state.n_rows)], arrays["mean"], arrays["r_factor"].ravel()])
    gathered = _all_gather(vector, trainer)  # (world_size, 1 + P + P²)
    width = state.width
    states = [
        LeastSquaresState.from_arrays(
            {
                "n_rows": round(row[0]),
                "n_features": state.n_features,
                "mean": row[1 : 1 + width],
                "r_factor": row[1 + width :].reshape(width, width),
            }
        )
        for row in gathered
    ]
    return merge_all(states)


class ExactFit:
    """One epoch's pass of the exact solver for ``model``: :meth:`update` per batch, then :meth:`solve_into`."""

    def __init__(self, model: LinearRegression) -> None:
        self.feature_shift = model.feature_mean.detach().double().cpu().numpy()  # (D,)
        self.target_shift = model.target_mean.detach().double().cpu().numpy()  # (K,)
        self.state = LeastSquaresState(model.linear.in_features, model.linear.out_features)
        self.solved = False

    def update(self, features: Tensor, targets: Tensor) -> None:
        """Fold a batch of raw features (B, D) and targets (B, K) or (B,), any float dtype, in float64."""
        x = features.detach().to("cpu", torch.float64).numpy()
        y = targets.detach().to("cpu", torch.float64).numpy().reshape(x.shape[0], -1)
        self.state.update(x - self.feature_shift, y - self.target_shift)

    @torch.no_grad()
    def solve_into(self, model: LinearRegression) -> Tensor | None:
        """Merge the ranks' states, solve, and set ``model``'s layer; return the training objective (a scalar).

        The objective is the model's: the data MSE in its (scaled) target units plus :meth:`penalty`, at the
        solution. ``None`` when no rank saw a row (nothing is changed).
        """
        self.solved = True
        ranks = Ranks.of(model._trainer)
        state = gather_states(self.state, model._trainer)
        if state.n_rows == 0:
            return None
        scale = model.feature_scale.detach().double().cpu().numpy()  # (D,)
        with warnings.catch_warnings():
            if ranks.rank != 0:  # every rank solves (identical weights everywhere); one says so
                warnings.simplefilter("ignore", RankDeficiencyWarning)
            solution = solve(state, model.fit_intercept, model.l2_strength, feature_scale=scale)
        # y - t = c (x - mu) + b'  and  y - t = s (W (x - mu) / sigma + b)  give  W = c sigma / s, b = b' / s.
        target_scale = model.target_scale.detach().double().cpu().numpy()  # (K,)
        weight = solution.coef_ * scale[None, :] / target_scale[:, None]  # (K, D)
        layer = model.linear
        layer.weight.copy_(torch.as_tensor(weight, dtype=layer.weight.dtype, device=layer.weight.device))
        if layer.bias is not None:
            bias = solution.intercept_ / target_scale  # (K,)
            layer.bias.copy_(torch.as_tensor(bias, dtype=layer.bias.dtype, device=layer.bias.device))
        data_loss = float(np.sum(solution.rss_ / target_scale**2) / (state.n_rows * state.n_targets))
        return model.penalty() + data_loss
