"""What one ``cli()`` call changes in the process lasts for that call: warning filters and environment variables.

The CLI runs in-process in tests and notebooks, so :func:`run_scope` sets its warning filters inside
:func:`warnings.catch_warnings` and puts back, when the call ends, every environment variable the run set or
changed (Lightning's ``seed_everything`` exports ``PL_GLOBAL_SEED`` for DDP's child processes, which the run has
started by then). The filters hide warnings of other libraries that a user of the CLI cannot act on, each scoped to
the module the warning is attributed to, so the same message from elsewhere still shows. The test suite's own
filters are in ``pyproject.toml``.
"""

from __future__ import annotations

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


def _restore_environment(before: dict[str, str]) -> None:
    for name in [name for name in os.environ if name not in before]:
        del os.environ[name]
    for name, value in before.items():
        if os.environ.get(name) != value:
            os.environ[name] = value


@contextmanager
def run_scope() -> Iterator[None]:
    """Hide the library warnings for the block; then restore the warning filters and the environment."""
    environment = dict(os.environ)
    try:
        with warnings.catch_warnings():
            _hide_library_warnings()
            yield
    finally:
        _restore_environment(environment)
