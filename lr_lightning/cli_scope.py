"""What one ``cli()`` call changes in the process lasts for that call: warning filters and environment variables.

The CLI runs in-process in tests and notebooks, so :func:`run_scope` sets its warning filters inside
:func:`warnings.catch_warnings` and puts back, when the call ends, every environment variable the run set or
changed (Lightning's ``seed_everything`` exports ``PL_GLOBAL_SEED`` for DDP's child processes, which the run has
started by then). The filters hide warnings of other libraries that a user of the CLI cannot act on, each scoped to
the module the warning is attributed to, so the same message from elsewhere still shows. The test suite's own
filters are in ``pyproject.toml``.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["run_scope"]


def _hide_library_warnings() -> None:
    # lightning.pytorch.cli calls jsonargparse APIs (instantiate_classes, skip_none) that jsonargparse 4.49+ marks
    # deprecated.
    warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"lightning\.pytorch\.cli")
    # lightning.pytorch.cli: the optimizer group deliberately replaces the model's fallback configure_optimizers.
    warnings.filterwarnings(
        "ignore", message=r".*configure_optimizers` will be overridden", module=r"lightning\.pytorch\.cli"
    )
    # lightning.pytorch.utilities._pytree (moving batches to the device) uses a torch.utils._pytree API that torch
    # 2.13 marks deprecated; it printed on every run.
    warnings.filterwarnings(
        "ignore",
        message=r".*isinstance\(treespec, LeafSpec\)` is deprecated",
        category=FutureWarning,
        module=r"lightning\.pytorch\.utilities\._pytree",
    )
    # lightning.pytorch.loops.prediction_loop offers prediction writers the batch indices of DataLoaders only;
    # CSVPredictionWriter puts rows in their source order from our loaders' own row order, so it needs none.
    warnings.filterwarnings(
        "ignore",
        message=r"Couldn't infer the batch indices .*`(InMemory|Disk)BatchLoader`",
        module=r"lightning\.pytorch\.loops\.prediction_loop",
    )
    # lightning.pytorch.loops.fit_loop: fewer batches per epoch than log_every_n_steps; the models log once per
    # epoch, so the step interval changes nothing a user sees.
    warnings.filterwarnings(
        "ignore",
        message=r"The number of training batches .* is smaller than the logging interval",
        module=r"lightning\.pytorch\.loops\.fit_loop",
    )
    # lightning.pytorch.callbacks.model_checkpoint: every run (a resumed fit too) writes into a version folder of
    # its own, so the checkpoint's saved folder is always another; the best checkpoint is tracked afresh there.
    warnings.filterwarnings(
        "ignore",
        message=r"The dirpath has changed from .* won't be reloaded",
        module=r"lightning\.pytorch\.callbacks\.model_checkpoint",
    )


class _HideAdvertisements(logging.Filter):
    """Drop Lightning's "💡 Tip: ... try installing ..." messages, advertisements of other packages."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("💡 Tip:")


#: The logger Lightning's ``rank_zero_info`` writes to, advertisements included.
_LIGHTNING_INFO = logging.getLogger("lightning.pytorch.utilities.rank_zero")


def _restore_environment(before: dict[str, str]) -> None:
    for name in [name for name in os.environ if name not in before]:
        del os.environ[name]
    for name, value in before.items():
        if os.environ.get(name) != value:
            os.environ[name] = value


@contextmanager
def run_scope() -> Iterator[None]:
    """Hide library warnings and advertisements for the block; then restore the warning filters and environment."""
    environment = dict(os.environ)
    advertisements = _HideAdvertisements()
    _LIGHTNING_INFO.addFilter(advertisements)
    try:
        with warnings.catch_warnings():
            _hide_library_warnings()
            yield
    finally:
        _LIGHTNING_INFO.removeFilter(advertisements)
        _restore_environment(environment)
