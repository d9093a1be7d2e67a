r"""``LightningLogisticRegression``: binary and multinomial logistic regression as a scikit-learn classifier."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from lightning.pytorch.callbacks import EarlyStopping
from lightning.pytorch.callbacks.early_stopping import EarlyStoppingReason
from sklearn.base import ClassifierMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.multiclass import check_classification_targets

from lr_lightning.errors import InputError, one_line, require
from lr_lightning.estimators.base import LightningEstimator, _number
from lr_lightning.models import LogisticRegression
from lr_lightning.models.solvers import GRADIENT

__all__ = ["LightningLogisticRegression"]


class LightningLogisticRegression(ClassifierMixin, LightningEstimator):
    r"""Logistic regression, :math:`\sigma(x w + b)` for two classes, a softmax over C classes, as a classifier.

    ``fit`` trains :class:`~lr_lightning.models.LogisticRegression` with a Lightning ``Trainer``
    (:mod:`lr_lightning.estimators.base`) on the mean log-loss plus the weight penalty,

    .. math::

        \frac{1}{\sum_i v_i} \sum_i v_i \ell_i(W \tilde{x}_i + b)
        + \lambda_2 \lVert W \rVert_F^2 + \lambda_1 \lVert W \rVert_1,

    each row weighing :math:`v_i`, its sample weight times its class's weight (``class_weight``), on standardized
    features :math:`\tilde{x}` (raw with ``standardize=False``). ``l2_strength=a`` is scikit-learn's
    ``LogisticRegression(C=1 / (2 * N * a))`` on the standardized features, N the training rows' total weight
    :math:`\sum_i v_i` (:mod:`lr_lightning.penalties`). Labels may be of any type (strings, integers): ``classes_``
    is their sorted set, as scikit-learn's ``LabelEncoder``.

    Args:
        l1_strength: :math:`\lambda_1 \ge 0`; needs ``solver="gradient"``.
        l2_strength: :math:`\lambda_2 \ge 0`. The default, 1e-4, keeps the optimum finite on separable classes
            (0 refuses them: the unpenalized log-loss has no minimum there).
        fit_intercept: learn the intercepts (never penalized).
        standardize: penalize the weights of the features scaled to unit variance over the training rows;
            ``False``: of the raw features; ``None`` (the default): ``fit_intercept``'s value (``True`` without an
            intercept is refused: centring would move the decision boundary off the origin).
        solver: ``"newton"`` (the default): one Newton step with a line search per pass over the rows, in float64,
            until the Newton decrement's estimate of the distance to the optimum is at most ``tol``;
            ``"gradient"``: the optimizer's steps on shuffled batches, ``max_epochs`` times.
        optimizer: the gradient solver's ``"sgd"``, ``"adam"`` or ``"lbfgs"``.
        lr: its learning rate; None: 0.1 for SGD, 0.01 for Adam, 1.0 for L-BFGS.
        max_epochs: at most this many passes (Newton steps); None: 50 for Newton, 100 for gradient.
        batch_size: rows per gradient step; None: 64, or every row for L-BFGS.
        tol: Newton stops after the pass whose starting weights are within ``tol`` of the minimal objective
            (estimated), having taken one more step: the last step is quadratic, far below ``tol``.
        class_weight: ``None``, ``"balanced"`` (:math:`n / (C n_k)`) or a weight per class label.
        precision: ``"64-true"`` (float64, the default) or ``"32-true"``.
        accelerator: Lightning's ``accelerator`` (``"cpu"``, ``"gpu"``, ``"auto"``), on one device.
        random_state: seed of the gradient solver's shuffles (an int, a ``RandomState``, None: 0).

    Attributes:
        classes_: the class labels, shape (C,), sorted.
        coef_: weights in the features' units, shape (1, D) for two classes, (C, D) otherwise.
        intercept_: shape (1,) or (C,).
        n_features_in_: D.
        feature_names_in_: the column names of a pandas DataFrame ``X``, shape (D,).
        n_iter_: passes run (Newton steps, or epochs).
        module_: the fitted :class:`~lr_lightning.models.LogisticRegression` (eval mode, no trainer attached).

    """

    def __init__(
        self,
        l1_strength: float = 0.0,
        l2_strength: float = 1e-4,
        fit_intercept: bool = True,
        standardize: bool | None = None,
        solver: str = "newton",
        optimizer: str = "adam",
        lr: float | None = None,
        max_epochs: int | None = None,
        batch_size: int | None = None,
        tol: float = 1e-10,
        class_weight: str | Mapping[Any, float] | None = None,
        precision: str = "64-true",
        accelerator: str = "cpu",
        random_state: Any = None,
    ) -> None:
        self.l1_strength = l1_strength
        self.l2_strength = l2_strength
        self.fit_intercept = fit_intercept
        self.standardize = standardize
        self.solver = solver
        self.optimizer = optimizer
        self.lr = lr
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.tol = tol
        self.class_weight = class_weight
        self.precision = precision
        self.accelerator = accelerator
        self.random_state = random_state

    def __sklearn_tags__(self) -> Any:
        """Return scikit-learn's tags: a multi-class classifier, which may score poorly with few gradient epochs."""
        tags = super().__sklearn_tags__()
        tags.classifier_tags.poor_score = self.solver == GRADIENT
        return tags

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> LightningLogisticRegression:
        """Fit on features X (N, D) and class labels y (N,), rows weighted by ``sample_weight`` (N,).

        Returns:
            The estimator, fitted.

        Raises:
            InputError: continuous targets, fewer than two classes (of positive weight), or a bad option.

        """
        self._check_options()
        require(_number(self.tol) and self.tol >= 0, "tol", "a number >= 0", self.tol)
        features, labels = self._validate(X, y)
        try:
            check_classification_targets(labels)
        except ValueError as error:  # scikit-learn's "Unknown label type: continuous"
            raise InputError(one_line(error)) from None
        self.classes_, encoded = np.unique(labels, return_inverse=True)
        weights = self._sample_weights(sample_weight, len(features))
        present = np.unique(encoded if weights is None else encoded[weights > 0])
        if len(present) < 2:
            only = self.classes_[present].tolist()[0]
            raise InputError(f"y has only one class of positive weight ({only!r}): a classifier needs 2 or more")
        module = LogisticRegression(
            in_features=features.shape[1],
            num_classes=len(self.classes_),
            class_names=self._class_names(),
            certificate=False,  # the stopping rule already reads the Newton decrement
            class_weight=self._class_weight_by_name(),
            **self._layer_options(),
        )
        data = self._data(features, encoded, weights, task="classification", class_names=self._class_names())
        stopping = self._stopping()
        self._fit_module(module, data, stopping)
        if stopping and stopping[0].stopping_reason != EarlyStoppingReason.STOPPING_THRESHOLD:
            warnings.warn(
                f"Newton's method ran its max_epochs={self._epochs()} passes without reaching tol={self.tol:g}: "
                f"the objective was last estimated {float(stopping[0].best_score):.3g} above its minimum (at a "
                "pass's start); raise max_epochs",
                ConvergenceWarning,
                stacklevel=2,
            )
        self.coef_, self.intercept_ = module.coef_, module.intercept_  # (1 or C, D), (1 or C,)
        return self

    def _class_names(self) -> list[str]:
        """Return the module's class names: the labels as text, in ``classes_`` order."""
        return [str(label) for label in self.classes_]

    def _class_weight_by_name(self) -> str | dict[str, float] | None:
        """``class_weight`` with the module's class names for keys; a label that is not a class is refused."""
        if not isinstance(self.class_weight, Mapping):
            return self.class_weight  # None or "balanced"; the module refuses anything else
        by_name = {}
        for label, weight in self.class_weight.items():
            where = np.flatnonzero(self.classes_ == label)
            if len(where) == 0:
                classes = ", ".join(repr(c) for c in self.classes_.tolist())
                raise InputError(f"class_weight names class {label!r}, which is not in y (classes: {classes})")
            by_name[str(self.classes_[where[0]])] = weight
        return by_name

    def _stopping(self) -> list[EarlyStopping]:
        """Newton: stop once the decrement's gap estimate at a pass's starting weights is at most ``tol``."""
        if self.solver != "newton":
            return []
        return [
            EarlyStopping(
                monitor="log_loss_gap",
                stopping_threshold=float(self.tol),
                patience=2**31,
                check_on_train_epoch_end=True,
                mode="min",
            )
        ]

    # -- predictions -------------------------------------------------------------------------------------------

    @torch.no_grad()
    def decision_function(self, X: Any) -> np.ndarray:
        """Logits of features X (N, D): shape (N,) for two classes (positive: ``classes_[1]``), else (N, C)."""
        features = self._feature_tensor(X)  # first: it says when the estimator is not fitted
        logits = self.module_.layer_outputs(features).double().cpu().numpy()  # (N, 1 or C)
        return logits[:, 0] if logits.shape[1] == 1 else logits

    @torch.no_grad()
    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities (N, C) of features X (N, D), columns in ``classes_`` order."""
        features = self._feature_tensor(X)
        return self.module_(features).double().cpu().numpy()

    def predict(self, X: Any) -> np.ndarray:
        """Return the most probable class label of each row of X (N, D), shape (N,)."""
        logits = self.decision_function(X)
        winners = (logits > 0).astype(np.int64) if logits.ndim == 1 else logits.argmax(axis=1)
        return self.classes_[winners]
