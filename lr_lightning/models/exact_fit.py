r"""The regression models' exact solver (``solver="exact"``): least squares or ridge in one pass, no optimizer.

The DataModule serves the training rows as one covering pass in chunks
(:meth:`~lr_lightning.data.base.InMemoryDataModule.stream_training_rows`: under DDP each rank its own shard, the
ranks together every row once). Each chunk folds into a float64 :class:`~lr_lightning.streaming.LeastSquaresState` (a
streaming QR, O((D + K)²) memory whatever N). After the epoch's last batch, and so before validation and before
the ``on_train_epoch_end`` hooks (the optimality gap, checkpoints), the states of all DDP ranks are all-gathered
and merged in rank order, solved by :func:`~lr_lightning.streaming.solve` and written into the
layer, so that the model's predictions in raw units are the solution's.

**What is solved.** The model is :math:`\hat{y} = s \odot (W (x - \mu) / \sigma + b) + t` with the scaling
buffers (:math:`\mu, \sigma` of the features, :math:`t, s` of the targets). The chunks enter the state as they
are (the merged state of the raw rows goes to the data too, whose least-squares reference, the certificate's,
is then not streamed again); the solve sees it shifted by the buffers, :math:`(x - \mu, y - t)`, and solves the
model's own problem: with a bias, least squares (or ridge) with an intercept (the shift changes nothing);
without one, the fit through :math:`(\mu, t)`, which is all the layer can reach (plain least squares without
an intercept when nothing is centred). ``l2_strength`` means what it means for the gradient solver
(:mod:`lr_lightning.penalties`): the penalty falls on the weights of the standardized features,
``feature_scale=`` :math:`\sigma`; target scaling does not change the minimizer. L1 has no closed form and is
refused.

**A ridge path.** With ``l2_path`` every candidate strength is solved from the same state (one SVD), one is chosen
by exact leave-one-out (a second pass over the training rows) or generalized cross-validation, and becomes the
model's ``l2_strength``: see :mod:`lr_lightning.models.ridge_selection`.

**Epochs.** Every epoch accumulates afresh and solves again: the same rows give the same solution (to rounding,
as the batch order may differ), so epochs after the first leave the weights as they are. One epoch is a fit.

**Steps.** No optimizer steps (Lightning's manual optimization, never stepping); each accumulated batch is
counted as a step of ``trainer.global_step``, so checkpoints, ``max_steps`` and logs see progress as they do
for gradient training.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

from lr_lightning.closed_form import RankDeficiencyWarning
from lr_lightning.data.ranks import Ranks
from lr_lightning.data.reference import gather_state
from lr_lightning.models.ridge_selection import choose_strength
from lr_lightning.streaming import LeastSquaresState, solve

if TYPE_CHECKING:
    from lr_lightning.models.linear import LinearRegression

__all__ = ["ExactFit"]


class ExactFit:
    """One epoch's pass of the exact solver for ``model`` (a :class:`~lr_lightning.models.solvers.EpochPass`)."""

    def __init__(self, model: LinearRegression) -> None:
        self.shift = np.concatenate(
            [t.detach().double().cpu().numpy() for t in (model.feature_mean, model.target_mean)]
        )
        self.state = LeastSquaresState(model.linear.in_features, model.linear.out_features)  # of the raw rows
        self.done = False

    def update(self, features: Tensor, targets: Tensor, weights: Tensor | None = None) -> None:
        """Fold a chunk of raw features (n, D), targets (n, K) or (n,) and weights (n,) or None, in float64."""
        x = features.detach().to("cpu", torch.float64).numpy()
        y = targets.detach().to("cpu", torch.float64).numpy().reshape(x.shape[0], -1)
        self.state.update(x, y, weights=None if weights is None else weights.detach().to("cpu", torch.float64).numpy())

    def _shifted(self, state: LeastSquaresState) -> LeastSquaresState:
        """Return the state of the rows shifted by the buffers, (x - mu, y - t): the same R, the means moved."""
        arrays = state.to_arrays()
        return LeastSquaresState.from_arrays({**arrays, "mean": arrays["mean"] - self.shift})

    @torch.no_grad()
    def finish(self, model: LinearRegression) -> float | None:
        """Merge the ranks' states, solve, and set ``model``'s layer; return the training objective (a scalar).

        The objective is the model's: the data MSE in its (scaled) target units plus :meth:`penalty`, at the
        solution (with ``l2_path``, the chosen candidate's, whose strength the model then holds). ``None`` when
        no rank saw a row (nothing is changed).
        """
        self.done = True
        ranks = Ranks.of(model._trainer)
        raw = gather_state(self.state, ranks)
        if raw.n_rows == 0:
            return None
        data = model.training_data()
        if data is not None:  # the certificate's reference: the same rows, not read again
            data.share_least_squares_state(raw)
        state = self._shifted(raw)
        scale = model.feature_scale.detach().double().cpu().numpy()  # (D,)
        with warnings.catch_warnings():
            if ranks.rank != 0:  # every rank solves (identical weights everywhere); one says so
                warnings.simplefilter("ignore", RankDeficiencyWarning)
            if model.l2_path is None:
                solution = solve(state, model.fit_intercept, model.l2_strength, feature_scale=scale)
            else:
                solution = choose_strength(model, state, ranks, scale)
        # y - t = c (x - mu) + b'  and  y - t = s (W (x - mu) / sigma + b)  give  W = c sigma / s, b = b' / s.
        target_scale = model.target_scale.detach().double().cpu().numpy()  # (K,)
        weight = solution.coef_ * scale[None, :] / target_scale[:, None]  # (K, D)
        layer = model.linear
        layer.weight.copy_(torch.as_tensor(weight, dtype=layer.weight.dtype, device=layer.weight.device))
        if layer.bias is not None:
            bias = solution.intercept_ / target_scale  # (K,)
            layer.bias.copy_(torch.as_tensor(bias, dtype=layer.bias.dtype, device=layer.bias.device))
        data_loss = float(np.sum(solution.rss_ / target_scale**2) / (state.weight_sum * state.n_targets))
        return float(model.penalty()) + data_loss
