"""The models' ``solver`` option: gradient steps on batches, or a solver that folds whole passes over the rows.

A pass solver (the regression models' ``exact``, :mod:`lr_lightning.models.exact_fit`; logistic regression's
``newton``, :mod:`lr_lightning.models.newton_fit`) takes no optimizer step. Each epoch the data serves the
training rows as one covering pass in chunks; every chunk goes to :meth:`EpochPass.update`, and after the last
one :meth:`EpochPass.finish` merges the ranks' sums and sets the layer, before validation, the
``on_train_epoch_end`` hooks and checkpoints. :class:`~lr_lightning.models.base.LinearModelBase` runs these hooks
once for every pass solver.
"""

from __future__ import annotations

from typing import Any, Protocol

import lightning.pytorch as pl
from torch import Tensor

from lr_lightning.errors import InputError, require

__all__ = ["GRADIENT", "EpochPass", "check_solver", "count_step"]

#: The solver every model has: the optimizer's steps on shuffled batches.
GRADIENT = "gradient"


class EpochPass(Protocol):
    """One epoch of a pass solver."""

    #: Whether :meth:`finish` has run this epoch.
    done: bool

    def update(self, features: Tensor, targets: Tensor, weights: Tensor | None = None) -> None:
        """Fold a chunk of raw features (n, D), targets (n, K) or labels (n,) and sample weights (n,) into the sums.

        ``weights`` is ``None`` when the data has none (every row weighs 1).
        """
        ...

    def finish(self, model: Any) -> float | None:
        """Merge the ranks' sums, set the layer of ``model`` (the pass's own); return the objective for ``train_loss``.

        ``None`` when no rank saw a row (nothing is changed).
        """
        ...


def check_solver(solver: str, pass_solver: str, l1_strength: float, what: str) -> str:
    """Return ``solver`` if it is ``"gradient"`` or ``pass_solver`` and fits the penalties; else an ``InputError``.

    Args:
        solver: the option's value.
        pass_solver: the model's pass solver (``"exact"``, ``"newton"``).
        l1_strength: the model's L1 strength, which no pass solver handles.
        what: what the pass solver solves, for the message.

    """
    choices = (GRADIENT, pass_solver)
    require(isinstance(solver, str) and solver in choices, "solver", f"one of {', '.join(choices)}", solver)
    if solver == pass_solver and l1_strength:
        raise InputError(
            f"solver {pass_solver!r} solves {what} and L1 has no place in it: l1_strength must be 0 with it, got "
            f"{l1_strength!r} (use solver 'gradient' for an L1 penalty)"
        )
    return solver


def count_step(trainer: pl.Trainer) -> None:
    """Count one step of ``trainer.global_step`` under manual optimization without stepping an optimizer.

    ``global_step`` reads the manual-optimization loop's step counter, which only an optimizer step advances;
    without steps, ModelCheckpoint would see no progress and save nothing. (A Lightning internal: revisit it on
    Lightning upgrades; ``tests/test_exact_solver.py`` checks the count.)
    """
    progress = trainer.fit_loop.epoch_loop.manual_optimization.optim_step_progress
    progress.increment_ready()
    progress.increment_completed()
