r"""The statistical inference of a fit, at the end of ``fit``: statsmodels' OLS, Logit and MNLogit tables.

:class:`InferenceSummary` (a callback: the models register one, the CLI configures it as ``summary:``) computes,
on every rank at the end of training, the table of :mod:`lr_lightning.summary_format` from the streamed sums of
the training rows (:mod:`lr_lightning.inference`), keeps it on the model (``model.summary()``, ``bse_``,
``pvalues_``, ``conf_int()``: :class:`~lr_lightning.models.statistics.InferenceStatistics`), and on rank 0 writes
``summary.txt`` and ``summary.json`` into the run folder and the text ``summary`` into TensorBoard; ``lr-lightning
fit`` prints it after the metrics.

**In the checkpoints.** The table is computed after the last epoch's checkpoints were saved (``on_train_end``
runs after ``ModelCheckpoint``'s last save), so rank 0 then rewrites, atomically (the trainer's
:class:`~lr_lightning.checkpoint.AtomicCheckpointIO`), each checkpoint of the fit's ``ModelCheckpoint`` callbacks
whose weights are the final ones (``latest.ckpt``; a ``best`` one when the best epoch is the last) with the table
added (:func:`~lr_lightning.models.checkpoint_record.add_inference`: plain values and tensors, loadable with
``weights_only=True``); a checkpoint of other weights is left as it is. Checkpoints the model saves later of the
same weights (``trainer.save_checkpoint``) hold it too. ``lr-lightning summary --ckpt_path CKPT`` prints it
(:mod:`lr_lightning.summary_command`), and ``load_from_checkpoint`` restores it (``model.summary()``, ``bse_``).
A valid regression table keeps its :class:`~lr_lightning.inference.OLSFit` too (stored with it): ``lr-lightning
predict --prediction_writer.intervals 0.95`` computes the mean's and new observations' intervals from it.

* **Linear regression** (each target its own OLS on the same design): the least-squares state of the raw training
  rows (:meth:`~lr_lightning.data.contract.TrainingData.least_squares_state`, shared with the certificate), one
  more pass for HC0 to HC3 (:class:`~lr_lightning.inference.HCAccumulator`, merged across ranks). The table is
  the OLS fit's; it is the model's when the model is at that optimum, which is what is checked.
* **Logistic regression**: the log-loss sums at the final weights and the class counts, from the certificate's
  pass (:class:`~lr_lightning.models.newton_fit.LogLossCertificate`) or one pass of its own;
  :func:`~lr_lightning.inference.logistic.logistic_inference` (Fisher information at the optimum).

**Validity.** The statistics hold at the optimum of an unpenalized fit. Refused, with the reason printed and no
standard errors, p-values or intervals (only the fit's coefficients): a penalty (``l1_strength`` or
``l2_strength`` non-zero); a regression whose relative optimality gap (the
:class:`~lr_lightning.callbacks.OptimalityGap` certificate, or the same gap computed here when the fit had none)
is above :data:`GAP_TOLERANCE`; a logistic fit that :func:`~lr_lightning.inference.logistic.check_inference`
refuses (separable rows, relative gap estimate above its tolerance), trained on ``loss: mse``, or without a bias.
A regression model without a bias is OLS through the origin (statsmodels' ``hasconst=False``, uncentred R²) when
its data is not centred (``standardize: false``); on centred data it is constrained through the features' mean,
which is no OLS: refused, with that reason. Aliased (rank-deficient) terms are named and get no standard error.
"""

from __future__ import annotations

import json
import os
from typing import Any

import lightning.pytorch as pl
import numpy as np
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.loggers import TensorBoardLogger

from lr_lightning.callbacks import LinearModel, OptimalityGap, reachable_least_squares
from lr_lightning.data.base import trainer_datamodule
from lr_lightning.data.contract import TrainingData
from lr_lightning.data.ranks import Ranks
from lr_lightning.errors import InputError, require
from lr_lightning.inference import COV_TYPES, HC_TYPES, HCAccumulator, fit_ols, ols_results
from lr_lightning.inference.logistic import CONVERGENCE_TOLERANCE, logistic_inference
from lr_lightning.streaming import optimality_gap
from lr_lightning.summary_format import InferenceTable

__all__ = ["GAP_TOLERANCE", "InferenceSummary", "InferenceTable", "inference_summary"]

#: Largest relative optimality gap (training MSE minus the least-squares optimum, over the optimum) at which a
#: regression's statistics are reported as valid.
GAP_TOLERANCE = 1e-6


def _penalty_reason(model: Any) -> str | None:
    l1, l2 = float(getattr(model, "l1_strength", 0.0)), float(getattr(model, "l2_strength", 0.0))
    if l1 or l2:
        return (
            f"the fit is penalized (l1_strength={l1:g}, l2_strength={l2:g}): standard errors and p-values hold for "
            "an unpenalized fit only"
        )
    return None


def _own_coefficients(model: LinearModel) -> np.ndarray:
    """(E, p): the model's coefficients in original units, the intercept first when it has one."""
    coef, intercept = model.coef_, model.intercept_
    return np.hstack([intercept[:, None], coef]) if model.fit_intercept else coef


def _regression_certificate(
    trainer: pl.Trainer, model: LinearModel, data: TrainingData, state: Any
) -> tuple[dict[str, Any], str | None]:
    """Return the certificate (JSON-ready, with its line) and the reason to refuse (None when at the optimum)."""
    callbacks = trainer.callbacks  # type: ignore[attr-defined]
    taken = next((c.certificate for c in callbacks if isinstance(c, OptimalityGap) and c.certificate), None)
    source = "OptimalityGap at the last epoch's end"
    solution = reachable_least_squares(data, model.fit_intercept)
    if taken is None:  # not certified during the fit: the same gap at the final weights, from the same state
        if solution is None:
            return {"kind": "optimality_gap"}, "the fit is not certified and there is no closed form to compare with"
        gap = optimality_gap(state, model.coef_, model.intercept_, solution)
        taken = (gap, gap / solution.mse_ if solution.mse_ > 1e-12 else None)
        source = "computed at the final weights (the fit was not certified)"
    gap, relative = taken
    certificate = {"kind": "optimality_gap", "gap": gap, "relative_gap": relative, "tolerance": GAP_TOLERANCE}
    variance = float(np.sum(state.r_factor[:, state.n_features :] ** 2)) / (state.weight_sum * state.n_targets)
    measure = relative if relative is not None else gap / max(variance, 1e-300)  # an exact fit: against the variance
    shown = f"relative optimality gap {relative:.3g}" if relative is not None else f"optimality gap {gap:.3g}"
    certificate["line"] = f"Validity: {shown} ({source}); tolerance {GAP_TOLERANCE:g}"
    if measure > GAP_TOLERANCE:
        return certificate, (
            f"the fit is not at the least-squares optimum: {shown} > tolerance {GAP_TOLERANCE:g} (fit longer, or "
            "use solver: exact)"
        )
    return certificate, None


def regression_table(trainer: pl.Trainer, model: Any, cov_type: str, alpha: float) -> InferenceTable:
    """Return the OLS table (WLS for weighted rows) of a linear regression (a collective under DDP)."""
    data = trainer_datamodule(trainer)
    assert isinstance(data, TrainingData)
    state = data.least_squares_state(distributed=True)
    terms = (["const"] if model.fit_intercept else []) + list(model.feature_names)
    kind = "WLS" if state is not None and state.weighted else "OLS"  # statsmodels' name for weighted rows
    table = InferenceTable(kind, terms, list(model.output_names), False, "", alpha, cov_type)
    reasons = [reason for reason in [_penalty_reason(model)] if reason]
    centred = bool(model.feature_mean.any() or model.target_mean.any())
    if not model.fit_intercept:
        if centred:
            reasons.append(
                "the model has no bias on centred data (standardize), so it is constrained through the features' "
                "mean: no OLS; set model bias: true, or data standardize: false for the table without an intercept"
            )
        else:
            table.notes.append("no intercept: OLS through the origin (statsmodels hasconst=False, uncentred R²)")
    fit = None
    if state is None:
        reasons.append("the data is too wide for a least-squares state")
    elif not (centred and not model.fit_intercept):
        certificate, reason = _regression_certificate(trainer, model, data, state)
        table.certificate = certificate
        reasons += [reason] if reason else []
        try:
            fit = fit_ols(state, model.fit_intercept)
        except ValueError as error:
            reasons.append(str(error))
    if reasons or fit is None:
        table.reason, table.coefficients = "; ".join(reasons), _own_coefficients(model)
        return table
    robust = None
    if cov_type in HC_TYPES:  # the second pass: residuals and leverages of every training row
        ranks = Ranks.of(trainer)
        robust = HCAccumulator(fit, (cov_type,))
        for features, targets, weights in data.chunks("train", ranks.rank, ranks.world_size):
            robust.update(features, targets, weights=weights)
        robust = HCAccumulator.from_vector(fit, ranks.sum(robust.to_vector()), (cov_type,))
    table.results, table.valid, table.fit = ols_results(fit, cov_type, robust), True, fit
    return table


def logistic_table(trainer: pl.Trainer, model: Any, cov_type: str, alpha: float) -> InferenceTable:
    """Return the Logit or MNLogit table of a fitted logistic regression (a collective under DDP)."""
    from lr_lightning.models.newton_fit import LogLossCertificate, final_sums

    names = list(model.class_names)
    binary = model.num_classes == 2
    equations = [f"{name} vs {names[0]}" for name in names[1:]]
    terms = (["const"] if model.fit_intercept else []) + list(model.feature_names)
    table = InferenceTable("Logit" if binary else "MNLogit", terms, equations, False, "", alpha, cov_type)
    if cov_type != "nonrobust":
        table.notes.append(f"cov_type {cov_type} applies to linear regression; logistic uses the Fisher information")
    callbacks = trainer.callbacks  # type: ignore[attr-defined]
    certificate = next((c for c in callbacks if isinstance(c, LogLossCertificate)), None)
    if certificate is not None:
        certificate.take(trainer, model)  # its pass, unless it ran already: one pass serves both
    final = certificate.final if certificate is not None else final_sums(trainer, model)
    reasons = [reason for reason in [_penalty_reason(model)] if reason]
    if model.hparams.get("loss") != "cross_entropy":
        reasons.append(f"the model was trained on loss={model.hparams.get('loss')!r}, not the log-likelihood")
    if not model.fit_intercept:
        reasons.append("inference needs a model with a bias (statsmodels' add_constant)")
    if model.hparams.get("class_weight") is not None:
        reasons.append("class_weight reweights the likelihood by class; the table would not be a Logit's")
    if final is None:
        reasons.append("no log-loss sums (too many parameters for a Hessian)")
    results = None
    if final is not None and model.fit_intercept:
        mean, scale = (buffer.detach().double().cpu().numpy() for buffer in (model.feature_mean, model.feature_scale))
        try:
            results = logistic_inference(
                final.sums,
                final.theta,
                final.class_counts,
                mean=mean,
                scale=scale,
                l2_strength=model.l2_strength,
                feature_names=model.feature_names,
                refuse=False,
            )
        except (InputError, np.linalg.LinAlgError) as error:
            reasons.append(str(error))
        if results is not None:
            check = results.check
            table.certificate = {
                "kind": "log_loss",
                "relative_gap": check.relative_gap,
                "tolerance": CONVERGENCE_TOLERANCE,
                "line": f"Validity: relative log-likelihood gap estimate {check.relative_gap:.3g} at the final "
                f"weights (Newton decrement); tolerance {CONVERGENCE_TOLERANCE:g}",
            }
            if check.refused and not check.penalized:
                reasons.append(check.reason)
    if reasons or results is None:
        table.equation_names = [f"logit {names[1]}"] if binary else [f"class {name}" for name in names]
        if not binary:
            table.notes.insert(0, "the model's own logits (softmax over every class), not contrasts")
        table.reason, table.coefficients = "; ".join(reasons), _own_coefficients(model)
        return table
    table.results, table.valid = results, True
    return table


class InferenceSummary(Callback):
    """At the end of ``fit``: the inference table of the model (see the module docstring), kept and written.

    Args:
        cov_type: the regression's covariance, one of ``nonrobust`` (the default), ``HC0``, ``HC1``, ``HC2``,
            ``HC3`` (statsmodels' names; the HC types take one more pass over the training rows).
        alpha: 1 - the confidence level of the intervals (0.05: 95%).
        enabled: ``False`` computes no table (a regression fit without ``optimality_gap`` then reads the training
            rows one time less): ``--summary.enabled false``.

    Attributes:
        table: the last fit's :class:`~lr_lightning.summary_format.InferenceTable`, or ``None``.

    """

    def __init__(self, cov_type: str = "nonrobust", alpha: float = 0.05, enabled: bool = True) -> None:
        require(cov_type in COV_TYPES, "summary.cov_type", f"one of {', '.join(COV_TYPES)}", cov_type)
        require(0.0 < alpha < 1.0, "summary.alpha", "in (0, 1)", alpha)
        self.cov_type, self.alpha, self.enabled = cov_type, float(alpha), enabled
        self.table: InferenceTable | None = None

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Forget the last fit's table (and the model's: one restored from a resumed checkpoint is stale)."""
        self.table = None
        from lr_lightning.models.statistics import InferenceStatistics  # here: the models import this module

        if isinstance(pl_module, InferenceStatistics):
            pl_module.keep_inference(None)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Compute the table on every rank (collectives), keep it on the model; rank 0 writes it."""
        if not self.enabled:
            return
        if not isinstance(pl_module, LinearModel) or not isinstance(trainer_datamodule(trainer), TrainingData):
            return
        if pl_module.task == "regression":
            table = regression_table(trainer, pl_module, self.cov_type, self.alpha)
        else:
            table = logistic_table(trainer, pl_module, self.cov_type, self.alpha)
        self.table = table
        from lr_lightning.models.statistics import InferenceStatistics  # here: the models import this module

        if isinstance(pl_module, InferenceStatistics):
            pl_module.keep_inference(table)
            if trainer.is_global_zero:
                store_in_checkpoints(trainer, pl_module, table)
            trainer.strategy.barrier("lr_lightning.summary.store_in_checkpoints")  # every rank: files are whole after
        log_dir = trainer.log_dir if trainer.loggers else None  # a collective under DDP: every rank asks
        if not trainer.is_global_zero:
            return
        text = table.text()
        if log_dir:
            os.makedirs(log_dir, exist_ok=True)
            with open(os.path.join(log_dir, "summary.txt"), "w", encoding="utf-8") as handle:
                handle.write(text + "\n")
            with open(os.path.join(log_dir, "summary.json"), "w", encoding="utf-8") as handle:
                json.dump(table.to_json(), handle, indent=2, allow_nan=False)
                handle.write("\n")
        tensorboard = next((lg for lg in trainer.loggers if isinstance(lg, TensorBoardLogger)), None)
        if tensorboard is not None:  # indented: Markdown shows it as preformatted text
            indented = "\n".join(f"    {line}" for line in text.splitlines())
            tensorboard.experiment.add_text("summary", indented, trainer.global_step)

    def summary_lines(self) -> list[str]:
        """Return the lines printed at the end of ``fit`` (none before a fit)."""
        return self.table.text().splitlines() if self.table is not None else []


def store_in_checkpoints(trainer: pl.Trainer, model: Any, table: InferenceTable) -> list[str]:
    """Add ``table`` to the fit's checkpoints of the weights it describes, atomically; return their paths.

    The checkpoints are those the trainer's ``ModelCheckpoint`` callbacks know (``last_model_path``,
    ``best_model_path``, the top k) in their own ``dirpath``; one that does not load or whose weights are not
    ``model``'s (an earlier best epoch) is left as it is.
    """
    from lr_lightning.checkpoint import AtomicCheckpointIO, load_checkpoint  # here: it imports the models
    from lr_lightning.models.checkpoint_record import add_inference

    paths: set[str] = set()
    for callback in trainer.checkpoint_callbacks:
        if isinstance(callback, ModelCheckpoint) and callback.dirpath:
            folder = os.path.abspath(callback.dirpath)
            known = {callback.last_model_path, callback.best_model_path, *callback.best_k_models}
            # this fit's files only: a resumed fit's callback may still name the previous run's best
            paths |= {path for path in known if path and os.path.dirname(os.path.abspath(path)) == folder}
    checkpoint_io = trainer.strategy.checkpoint_io
    writer = checkpoint_io if isinstance(checkpoint_io, AtomicCheckpointIO) else AtomicCheckpointIO()
    stored = []
    for path in sorted(str(path) for path in paths if path):
        if not os.path.isfile(path):
            continue
        try:
            checkpoint = load_checkpoint(path)
        except InputError:
            continue
        if not model.describes(checkpoint.get("state_dict")):
            continue
        add_inference(checkpoint, table)
        writer.save_checkpoint(checkpoint, path)
        stored.append(path)
    return stored


def inference_summary(model: pl.LightningModule) -> list[Callback]:
    """Return what a model's ``configure_callbacks`` adds: an :class:`InferenceSummary` unless the trainer has one.

    The CLI's (``summary:``, with its options) stays: Lightning would replace it with the model's otherwise.
    """
    trainer = model._trainer
    callbacks = trainer.callbacks if trainer is not None else []  # type: ignore[attr-defined]
    return [] if any(isinstance(callback, InferenceSummary) for callback in callbacks) else [InferenceSummary()]
