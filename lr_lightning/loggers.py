"""Lightning's TensorBoardLogger with a run folder claimed atomically: a new ``version_N``, or an evaluation's."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from lightning.fabric.utilities.rank_zero import rank_zero_only
from lightning.fabric.utilities.types import _PATH
from lightning.pytorch.loggers import TensorBoardLogger as LightningTensorBoardLogger

from lr_lightning.errors import InputError, require
from lr_lightning.run_folders import claim_evaluation_folder, claim_next_version, evaluation_prefix, numbered_folders

__all__ = ["LIGHTNING_TENSORBOARD_PATHS", "TensorBoardLogger", "is_plain_name"]

#: Class paths of Lightning's TensorBoardLogger that the CLI replaces with this one (same arguments).
LIGHTNING_TENSORBOARD_PATHS = (
    "lightning.pytorch.loggers.TensorBoardLogger",
    "lightning.pytorch.loggers.tensorboard.TensorBoardLogger",
    "pytorch_lightning.loggers.TensorBoardLogger",
    "pytorch_lightning.loggers.tensorboard.TensorBoardLogger",
)


def is_plain_name(name: object) -> bool:
    """Whether ``name`` is one folder's name: a non-empty string without a path separator, not ``.`` or ``..``."""
    if not isinstance(name, str) or name in ("", ".", ".."):
        return False
    return not any(separator and separator in name for separator in ("/", os.sep, os.altsep))


class TensorBoardLogger(LightningTensorBoardLogger):
    """``lightning.pytorch.loggers.TensorBoardLogger`` whose run folder is created, not just listed.

    Lightning picks "largest existing version + 1" from a listing, so two runs started together can share a
    folder. Here process 0 creates the folder with an exclusive ``mkdir`` (:func:`claim_next_version`) when
    Lightning first asks for the version, at the start of the run, after the DataModule has checked its data (see
    ``InMemoryDataModule.trainer``): a run that stops on bad input creates nothing. The other processes of a DDP
    run write nothing; Lightning broadcasts process 0's folder.

    With ``fit_version`` and ``evaluation`` the run is an evaluation of that fit: its folder is the next free
    ``<save_dir>/<name>/<fit_version>/<evaluation>_K`` (``runs/sourdough/version_0/test_0``), claimed the same way,
    and :attr:`version` is ``"version_0/test_0"``. TensorBoard pointed at ``<save_dir>/<name>`` then lists the fit and
    its evaluations under it. The CLI sets both from ``--ckpt_path`` for ``validate``, ``test`` and ``predict``
    (:func:`lr_lightning.config_checks.place_evaluation_run`), replacing any value a config holds.

    Args:
        save_dir: the folder of the experiments (``runs``).
        name: the experiment (``runs/<name>``).
        version: an explicit run folder (``int`` N: ``version_N``; a ``str``: that name) instead of a new one.
        log_graph: as Lightning's.
        default_hp_metric: as Lightning's.
        prefix: as Lightning's.
        sub_dir: as Lightning's: a folder inside the run folder for the logs.
        fit_version: the folder of the fit in the experiment (``version_0``) that this run evaluates.
        evaluation: what the run does (``validate``, ``test``, ``predict``): its folders are ``<evaluation>_K``.
        kwargs: passed to TensorBoard's ``SummaryWriter``, as Lightning's.

    """

    def __init__(
        self,
        save_dir: _PATH,
        name: str | None = "lightning_logs",
        version: int | str | None = None,
        log_graph: bool = False,
        default_hp_metric: bool = True,
        prefix: str = "",
        sub_dir: _PATH | None = None,
        fit_version: str | None = None,
        evaluation: str | None = None,
        **kwargs: Any,
    ) -> None:
        if fit_version is not None or evaluation is not None:
            require(is_plain_name(fit_version), "fit_version", "a folder name (version_N)", fit_version)
            require(is_plain_name(evaluation), "evaluation", "a name (validate, test or predict)", evaluation)
            if version is not None:
                raise InputError(f"version {version!r} and fit_version {fit_version!r}: give one, not both")
        super().__init__(
            save_dir,
            name=name,
            version=version,
            log_graph=log_graph,
            default_hp_metric=default_hp_metric,
            prefix=prefix,
            sub_dir=sub_dir,
            **kwargs,
        )
        self._fit_version = fit_version
        self._evaluation = evaluation

    @property
    def fit_version(self) -> str | None:
        """The folder of the fit this run evaluates (``version_0``), or ``None`` for a run of its own."""
        return self._fit_version

    @property
    def evaluation(self) -> str | None:
        """What this evaluation does (``test``), or ``None`` for a run of its own."""
        return self._evaluation

    @property
    def version(self) -> int | str:
        """The run folder inside the experiment: ``N`` for ``version_N``, or ``"version_0/test_0"`` (claimed here)."""
        if self._version is None and self._fit_version is not None and self._evaluation is not None:
            fit_folder = Path(self.root_dir) / self._fit_version
            if rank_zero_only.rank != 0:  # type: ignore[attr-defined]
                # Nothing is created: Lightning broadcasts process 0's folder (trainer.log_dir).
                numbers = numbered_folders(fit_folder, evaluation_prefix(self._evaluation))
                folder = f"{evaluation_prefix(self._evaluation)}{numbers[-1] + 1 if numbers else 0}"
            else:
                folder = claim_evaluation_folder(fit_folder, self._evaluation)
            self._version = os.path.join(self._fit_version, folder)
        return super().version

    def _get_next_version(self) -> int:
        # Lightning sets rank_zero_only.rank at import; the decorator's type does not declare it.
        if rank_zero_only.rank != 0:  # type: ignore[attr-defined]
            return super()._get_next_version()
        return claim_next_version(Path(self.root_dir))
