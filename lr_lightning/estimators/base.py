r"""What both scikit-learn estimators share: the options, the quiet Trainer, and one fit of a LightningModule.

An estimator's ``fit`` validates its input the scikit-learn way (:func:`sklearn.utils.validation.validate_data`),
builds the package's own LightningModule and an :class:`~lr_lightning.data.ArraysDataModule` of the arrays (every
row trains: no validation or test split), and runs ``Trainer.fit`` with no logger, no checkpoints, no progress
bar, no validation and no inference table (:class:`~lr_lightning.summary.InferenceSummary` switched off; the
models' certificates are off too), so a fit writes no file and prints nothing. Lightning's banners ("GPU
available", tips, "`Trainer.fit` stopped") are silenced for the fit only (:func:`quiet_lightning`).

**Penalties.** ``l1_strength`` and ``l2_strength`` are the models' (:mod:`lr_lightning.penalties`, the one
statement of the mapping): on N training rows (the sum of ``sample_weight`` when given) and with ``standardize``
(the features scaled by their standard deviation over the training rows, as a ``StandardScaler`` would),

* ``LightningLinearRegression(l2_strength=a)`` has the minimizer of ``Ridge(alpha=N * a)`` on the standardized
  features (:func:`~lr_lightning.penalties.sklearn_ridge_alpha`);
* ``LightningLogisticRegression(l2_strength=a)`` that of ``LogisticRegression(C=1 / (2 * N * a))``
  (:func:`~lr_lightning.penalties.sklearn_logistic_c`).

With ``standardize=False`` (the default without an intercept: centring would move such a fit off the origin) the
same mappings hold on the raw features. The strength does not scale with N; scikit-learn's ``alpha`` and ``1 / C``
do, so one ``l2_strength`` is the same penalty per row on folds of any size and on the refit on all rows.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import partial
from numbers import Integral, Real
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch.callbacks import Callback
from sklearn.base import BaseEstimator
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted, validate_data

from lr_lightning.cli_scope import run_scope
from lr_lightning.data import ArraysDataModule
from lr_lightning.data.base import MAX_SEED
from lr_lightning.data.weights import check_weights
from lr_lightning.errors import InputError, one_line, require
from lr_lightning.models.base import LinearModelBase
from lr_lightning.models.solvers import GRADIENT
from lr_lightning.summary import InferenceSummary

__all__ = ["OPTIMIZERS", "PRECISIONS", "LightningEstimator", "quiet_lightning"]

#: ``optimizer`` choices of the gradient solver: the torch optimizer and its default learning rate.
OPTIMIZERS: dict[str, tuple[Callable[..., torch.optim.Optimizer], float]] = {
    "sgd": (torch.optim.SGD, 0.1),
    "adam": (torch.optim.Adam, 0.01),
    "lbfgs": (torch.optim.LBFGS, 1.0),
}

#: ``precision`` choices: float64 (the default: scikit-learn users expect float64 answers) or float32.
PRECISIONS = ("64-true", "32-true")

#: Rows per gradient step when ``batch_size`` is None (but L-BFGS, which takes every row at once).
DEFAULT_BATCH_SIZE = 64

#: Epochs when ``max_epochs`` is None: one pass solves least squares; Newton stops early once converged.
DEFAULT_EPOCHS = {"exact": 1, "newton": 50, GRADIENT: 100}

# Lightning's loggers: "GPU available", "💡 Tip", "`Trainer.fit` stopped" are INFO records of their children.
_LIGHTNING_LOGGERS = tuple(logging.getLogger(name) for name in ("lightning.pytorch", "lightning.fabric"))


@contextmanager
def quiet_lightning() -> Iterator[None]:
    """Silence Lightning's INFO banners and the CLI's hidden warnings for the block; restore both afterwards.

    Warnings a user can act on (an L1 penalty with an optimizer that is not SGD, a rank-deficient design) still show.
    """
    levels = [logger.level for logger in _LIGHTNING_LOGGERS]
    for logger in _LIGHTNING_LOGGERS:
        logger.setLevel(max(logger.getEffectiveLevel(), logging.WARNING))  # a quieter level set by the user stays
    try:
        with run_scope():
            # The estimators default to the CPU on purpose: a machine's unused GPU is no news at every fit.
            warnings.filterwarnings(
                "ignore", message="GPU available but not used", module=r"lightning\.pytorch\.trainer\.setup"
            )
            yield
    finally:
        for logger, level in zip(_LIGHTNING_LOGGERS, levels, strict=True):
            logger.setLevel(level)


def _sample_row(row: int) -> str:
    return f"row {row}"


def _writable(array: np.ndarray) -> np.ndarray:
    """``array``, copied only if it is read-only (a memmap opened "r"): torch warns on tensors of read-only memory."""
    return np.require(array, requirements=["W"])


def _number(value: Any) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool)


def _whole(value: Any) -> bool:
    return isinstance(value, Integral) and not isinstance(value, bool)


class LightningEstimator(BaseEstimator):
    """The shared machinery of the estimators; a subclass has the constructor (scikit-learn reads its signature).

    A subclass sets the options below in its ``__init__`` (stored as given, checked by ``fit``), builds its
    LightningModule in ``fit`` and hands it to :meth:`_fit_module`.
    """

    solver: str
    l1_strength: float
    l2_strength: float
    fit_intercept: bool
    standardize: bool | None
    optimizer: str
    lr: float | None
    max_epochs: int | None
    batch_size: int | None
    precision: str
    accelerator: str
    random_state: Any

    # -- options -------------------------------------------------------------------------------------------------

    def _check_options(self) -> None:
        """Refuse an option the models do not check themselves (they check the strengths and the solver)."""
        require(self.optimizer in OPTIMIZERS, "optimizer", f"one of {', '.join(OPTIMIZERS)}", self.optimizer)
        require(self.lr is None or (_number(self.lr) and self.lr > 0), "lr", "a number > 0 or None", self.lr)
        epochs = self.max_epochs
        require(epochs is None or (_whole(epochs) and epochs >= 1), "max_epochs", "an integer >= 1 or None", epochs)
        size = self.batch_size
        require(size is None or (_whole(size) and size >= 1), "batch_size", "an integer >= 1 or None", size)
        require(self.precision in PRECISIONS, "precision", f"one of {', '.join(PRECISIONS)}", self.precision)
        require(isinstance(self.fit_intercept, bool), "fit_intercept", "True or False", self.fit_intercept)
        require(self.standardize in (None, True, False), "standardize", "True, False or None", self.standardize)
        if self.standardize and not self.fit_intercept:
            raise InputError(
                "standardize=True needs fit_intercept=True: standardizing centres the features, which moves a fit "
                "without an intercept through their mean instead of the origin; set standardize=False (or None)"
            )

    def _build_optimizer(self) -> partial[torch.optim.Optimizer] | None:
        """Return what builds the gradient solver's optimizer from the parameters (a partial: fitted models pickle)."""
        if self.solver != GRADIENT:
            return None
        optimizer, default_lr = OPTIMIZERS[self.optimizer]
        lr = default_lr if self.lr is None else float(self.lr)
        if self.optimizer == "lbfgs":
            return partial(optimizer, lr=lr, line_search_fn="strong_wolfe")
        return partial(optimizer, lr=lr)

    @property
    def _standardizes(self) -> bool:
        """Whether the features are standardized: ``standardize``, or when None, whenever there is an intercept."""
        return self.fit_intercept if self.standardize is None else bool(self.standardize)

    def _epochs(self) -> int:
        return int(self.max_epochs) if self.max_epochs is not None else DEFAULT_EPOCHS.get(self.solver, 1)

    def _batch_size(self, rows: int) -> int:
        if self.batch_size is not None:
            return int(self.batch_size)
        return rows if self.optimizer == "lbfgs" else DEFAULT_BATCH_SIZE

    def _seed(self) -> int:
        """Return the DataModule's seed (its shuffles) from ``random_state``: an int, a RandomState, None for 0."""
        if self.random_state is None:
            return 0
        if _whole(self.random_state) and 0 <= self.random_state <= MAX_SEED:
            return int(self.random_state)
        try:
            return int(check_random_state(self.random_state).randint(MAX_SEED))
        except ValueError:
            raise InputError(
                f"random_state must be None, an integer in [0, {MAX_SEED}] or a numpy RandomState, got "
                f"{self.random_state!r}"
            ) from None

    # -- input ----------------------------------------------------------------------------------------------------

    def _validate(self, X: Any, y: Any = "no_validation", reset: bool = True, **check: Any) -> Any:
        """:func:`~sklearn.utils.validation.validate_data` to float64, its ValueErrors raised as InputErrors."""
        try:
            return validate_data(self, X, y, reset=reset, dtype=np.float64, **check)
        except ValueError as error:
            raise InputError(one_line(error)) from error

    def _feature_tensor(self, X: Any) -> torch.Tensor:
        """Return checked features (N, D) of a fitted estimator as a tensor in the module's dtype and device."""
        check_is_fitted(self)
        features = self._validate(X, reset=False)
        weight = self.module_.linear.weight
        return torch.as_tensor(_writable(features), device=weight.device).to(weight.dtype)

    # -- fit ------------------------------------------------------------------------------------------------------

    def _fit_module(
        self,
        module: LinearModelBase,
        data: ArraysDataModule,
        callbacks: Sequence[Callback] = (),
    ) -> None:
        """Run ``Trainer.fit`` of ``module`` on ``data`` quietly; keep the module, detached and in eval mode."""
        with quiet_lightning():
            trainer = self._trainer(callbacks)
            trainer.fit(module, datamodule=data)
        self.n_iter_ = int(trainer.current_epoch)
        module.trainer = None  # Lightning's setter takes None: the fitted module keeps no trainer, no data
        self.module_ = module.cpu().eval()  # predictions on the CPU: a fitted estimator pickles and loads anywhere

    def _trainer(self, callbacks: Sequence[Callback]) -> pl.Trainer:
        """Return a Trainer that writes, prints and validates nothing; an accelerator it cannot use is refused."""
        try:
            return pl.Trainer(
                accelerator=self.accelerator,
                devices=1,
                precision=self.precision,  # type: ignore[arg-type]  # checked against PRECISIONS
                max_epochs=self._epochs(),
                logger=False,
                enable_checkpointing=False,
                enable_progress_bar=False,
                enable_model_summary=False,
                num_sanity_val_steps=0,
                limit_val_batches=0,
                # The model adds an inference summary unless the trainer has one: this one computes nothing.
                callbacks=[InferenceSummary(enabled=False), *callbacks],
            )
        except (MisconfigurationException, ValueError) as error:  # Lightning's words for an accelerator it lacks
            raise InputError(f"accelerator {self.accelerator!r}: {one_line(error)}") from None

    @staticmethod
    def _sample_weights(sample_weight: Any, rows: int) -> np.ndarray | None:
        """``sample_weight`` as checked float64 weights (N,): numbers >= 0, not all 0; ``None`` stays ``None``."""
        if sample_weight is None:
            return None
        weights = check_weights(sample_weight, "sample_weight", _sample_row, rows=rows)
        if not weights.any():
            raise InputError("sample_weight: every weight is zero; at least one row must have a positive weight")
        return weights

    def _data(
        self, features: np.ndarray, targets: np.ndarray, weights: np.ndarray | None, **options: Any
    ) -> ArraysDataModule:
        """Return the DataModule of a fit: every row trains, shuffled (gradient solver) by ``random_state``'s seed."""
        return ArraysDataModule(
            _writable(features),
            _writable(targets),
            weights=None if weights is None else _writable(weights),
            batch_size=self._batch_size(len(features)),
            val_fraction=0.0,
            test_fraction=0.0,
            standardize=self._standardizes,
            seed=self._seed(),
            in_memory=True,
            **options,
        )

    def _layer_options(self) -> dict[str, Any]:
        """Return the module options both estimators pass the same way."""
        names = getattr(self, "feature_names_in_", None)
        return {
            "l1_strength": self.l1_strength,
            "l2_strength": self.l2_strength,
            "bias": self.fit_intercept,
            "feature_names": None if names is None else [str(name) for name in names],
            "init": "zeros",  # a convex objective: zeros is a fine start, and a deterministic one
            "optimizer": self._build_optimizer(),
            "solver": self.solver,
        }
