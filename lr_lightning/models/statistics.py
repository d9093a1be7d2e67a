"""statsmodels-like attributes of a fitted model: the inference table of its last fit (:mod:`lr_lightning.summary`).

:class:`InferenceStatistics` is a base of every model (:class:`~lr_lightning.models.base.LinearModelBase`). The
:class:`~lr_lightning.summary.InferenceSummary` callback sets the table at the end of ``fit`` and writes it into
the fit's checkpoints that hold the final weights (``latest.ckpt``; ``best-*.ckpt`` when the best epoch is the
last), under :data:`~lr_lightning.models.checkpoint_record.INFERENCE_KEY`, as plain values and tensors. A model
loaded from such a checkpoint (``load_from_checkpoint``, or ``--ckpt_path``) has the table again
(:meth:`InferenceStatistics.restore_inference`); one loaded from an older checkpoint, or one saved with
``summary.enabled: false``, has none. The table describes the weights it was computed at: the model remembers
them, saves it only into checkpoints of those weights, and a new fit forgets it. Layouts are statsmodels', terms
``const`` first:

* linear regression (K targets, p = D + 1 terms, or D without a bias): ``params_``, ``bse_``, ``tvalues_``,
  ``pvalues_`` (K, p) (one row per target, as K statsmodels OLS fits); ``conf_int(alpha)`` (K, p, 2);
* binary logistic (statsmodels ``Logit``): (p,) and ``conf_int`` (p, 2);
* multi-class logistic (``MNLogit``, contrasts against the first class, M = C - 1): (p, M) and ``conf_int``
  (M, p, 2).

When inference was refused (a penalized fit, a fit away from its optimum: the table says why) the statistics
raise :class:`NoInferenceError` with the reason; :meth:`InferenceStatistics.summary` still returns the table.

A valid linear regression table also holds its OLS fit (:class:`~lr_lightning.inference.OLSFit`, stored and
restored with it): :meth:`InferenceStatistics.interval_fit` gives it to the prediction writer's ``intervals``
(:mod:`lr_lightning.prediction_writer`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

if TYPE_CHECKING:
    from lr_lightning.inference import OLSFit
    from lr_lightning.summary_format import InferenceTable

__all__ = ["InferenceStatistics", "NoInferenceError"]


class NoInferenceError(RuntimeError):
    """The model has no valid inference: not fitted (with the summary callback), or refused (the reason given)."""


class InferenceStatistics:
    """Mixin: ``summary()``, ``params_``, ``bse_``, ``tvalues_``, ``pvalues_``, ``conf_int()`` of the last fit."""

    #: The last fit's table, set by :class:`~lr_lightning.summary.InferenceSummary`; ``None`` before.
    _inference_table: InferenceTable | None = None
    #: The weights the table describes (CPU copies of the state dict), ``None`` without a table.
    _inference_weights: dict[str, torch.Tensor] | None = None

    @property
    def inference_(self) -> InferenceTable:
        """The last fit's :class:`~lr_lightning.summary_format.InferenceTable` (valid or refused)."""
        if self._inference_table is None:
            raise NoInferenceError(
                f"{type(self).__name__} has no inference table: fit it first (the InferenceSummary callback, which "
                "the models register, computes it at the end of fit and stores it in the checkpoints of the final "
                "weights; a checkpoint saved before lr_lightning stored it, or with summary.enabled false, has none)"
            )
        return self._inference_table

    def keep_inference(self, table: InferenceTable | None, weights: Mapping[str, Any] | None = None) -> None:
        """Keep ``table`` as the last fit's (the summary callback calls it at the end of fit); ``None`` forgets it.

        Args:
            table: the table, or ``None``.
            weights: the state dict the table describes; default the model's current one.

        """
        self._inference_table = table
        if table is None:
            self._inference_weights = None
            return
        if weights is None:
            weights = self.state_dict()  # type: ignore[attr-defined]  # the LightningModule's
        self._inference_weights = _cpu_copy(weights)

    def describes(self, state: Any) -> bool:
        """Whether the kept table describes the weights ``state`` (a state dict: a checkpoint's or the model's)."""
        kept = self._inference_weights
        if self._inference_table is None or kept is None or not isinstance(state, Mapping):
            return False
        if set(state) != set(kept):
            return False
        return all(
            isinstance(value, torch.Tensor)
            and value.shape == kept[name].shape
            and value.dtype == kept[name].dtype
            and torch.equal(value.detach().cpu(), kept[name])
            for name, value in state.items()
        )

    def inference_record(self, state: Any) -> dict[str, Any] | None:
        """Return the table's record when it describes the weights ``state``, else ``None``.

        The record is :meth:`~lr_lightning.summary_format.InferenceTable.to_record`'s.
        """
        if not self.describes(state):
            return None
        assert self._inference_table is not None
        return self._inference_table.to_record()

    def restore_inference(self, table: InferenceTable | None, state: Any) -> None:
        """Keep a table read from a checkpoint, as the one of its weights ``state`` (``None``: none stored)."""
        if table is None or not isinstance(state, Mapping):
            self.keep_inference(None)
            return
        self.keep_inference(table, state)

    def interval_fit(self) -> OLSFit:
        """Return the OLS fit behind a valid regression table, for prediction intervals of new rows.

        :func:`~lr_lightning.inference.prediction_intervals` takes it (statsmodels' ``get_prediction``, nonrobust).

        Raises:
            NoInferenceError: no table (:attr:`inference_`; a new fit forgets it), a refused one
                (its reason), a logistic one, one of a robust covariance (statsmodels' intervals would use it), or one
                stored before lr_lightning kept the fit with the table.

        """
        from lr_lightning.summary_format import LINEAR_KINDS

        table = self.inference_
        if table.kind not in LINEAR_KINDS:
            raise NoInferenceError(f"the fit's table is a {table.kind}: intervals are for linear regression")
        if not table.valid:
            raise NoInferenceError(f"the fit's inference was refused: {table.reason}")
        if table.cov_type != "nonrobust":
            raise NoInferenceError(
                f"the fit's table has cov_type {table.cov_type}; the intervals are nonrobust (statsmodels' "
                "get_prediction of a nonrobust fit): fit with summary.cov_type nonrobust"
            )
        if table.fit is None:
            raise NoInferenceError(
                "the checkpoint's inference table was stored before lr_lightning kept the fit the intervals need: "
                "fit again"
            )
        return table.fit

    def summary(self) -> str:
        """Return the last fit's inference table as text (what ``summary.txt`` holds)."""
        return self.inference_.text()

    def _valid_results(self):  # type: ignore[no-untyped-def]
        table = self.inference_
        if table.results is None:
            raise NoInferenceError(f"no inference for this fit: {table.reason}")
        return table.results

    @property
    def params_(self) -> np.ndarray:
        """The estimated parameters, intercept first (layouts: the module docstring)."""
        return np.asarray(self._valid_results().params)

    @property
    def bse_(self) -> np.ndarray:
        """The parameters' standard errors (NaN for aliased terms)."""
        return np.asarray(self._valid_results().bse)

    @property
    def tvalues_(self) -> np.ndarray:
        """The statistics params / bse: t (nonrobust OLS) or z."""
        return np.asarray(self._valid_results().tvalues)

    @property
    def pvalues_(self) -> np.ndarray:
        """Two-sided p-values of the t (or z) statistics."""
        return np.asarray(self._valid_results().pvalues)

    def conf_int(self, alpha: float | None = None) -> np.ndarray:
        """Confidence intervals at level 1 - alpha (default: the summary's ``alpha``); ``[..., 0]`` lower."""
        results = self._valid_results()
        return np.asarray(results.conf_int(self.inference_.alpha if alpha is None else alpha))


def _cpu_copy(state: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    return {str(name): value.detach().cpu().clone() for name, value in state.items() if isinstance(value, torch.Tensor)}
