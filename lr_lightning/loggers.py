"""Lightning's TensorBoardLogger with a version folder claimed atomically."""

from __future__ import annotations

from pathlib import Path

from lightning.fabric.utilities.rank_zero import rank_zero_only
from lightning.pytorch.loggers import TensorBoardLogger as LightningTensorBoardLogger

from lr_lightning.run_folders import claim_next_version

__all__ = ["LIGHTNING_TENSORBOARD_PATHS", "TensorBoardLogger"]

#: Class paths of Lightning's TensorBoardLogger that the CLI replaces with this one (same arguments).
LIGHTNING_TENSORBOARD_PATHS = (
    "lightning.pytorch.loggers.TensorBoardLogger",
    "lightning.pytorch.loggers.tensorboard.TensorBoardLogger",
    "pytorch_lightning.loggers.TensorBoardLogger",
    "pytorch_lightning.loggers.tensorboard.TensorBoardLogger",
)


class TensorBoardLogger(LightningTensorBoardLogger):
    """``lightning.pytorch.loggers.TensorBoardLogger`` whose new ``version_N`` is created, not just listed.

    Lightning picks "largest existing version + 1" from a listing, so two runs started together can share a
    folder. Here process 0 creates the folder with an exclusive ``mkdir`` (:func:`claim_next_version`) when
    Lightning first asks for the version, at the start of the run, after the DataModule has checked its data (see
    ``InMemoryDataModule.trainer``): a run that stops on bad input creates nothing. The other processes of a DDP
    run write nothing; Lightning broadcasts process 0's folder.
    """

    def _get_next_version(self) -> int:
        # Lightning sets rank_zero_only.rank at import; the decorator's type does not declare it.
        if rank_zero_only.rank != 0:  # type: ignore[attr-defined]
            return super()._get_next_version()
        return claim_next_version(Path(self.root_dir))
