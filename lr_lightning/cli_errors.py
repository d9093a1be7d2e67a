"""How the ``lr-lightning`` command ends on an error: one line and an exit code for errors a user can act on.

* :class:`~lr_lightning.errors.InputError` (a mistake in the user's input, found before anything is written): exit 2;
* :class:`~lr_lightning.models.base.TrainingDivergedError` (the message names the epoch, the step and the likely
  causes): exit 1;
* a full disk, a quota, a read-only or forbidden folder (:data:`SYSTEM_ERRNOS`): exit 2.

Anything else is a bug and keeps its traceback. A callback that fails while Lightning handles an exception (a
checkpoint written on exception, a logger flushing) raises a second error whose context is the first, so the chain
of an error is searched, first error first.
"""

from __future__ import annotations

import errno
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from lr_lightning.errors import InputError, one_line
from lr_lightning.models.base import TrainingDivergedError

__all__ = ["SYSTEM_ERRNOS", "errors_in_one_line", "explain", "input_error_in"]

#: Errors of the machine rather than the program, printed in one line: a full disk, a quota, a read-only folder.
SYSTEM_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM)


def _chain(error: BaseException) -> list[BaseException]:
    """Return ``error`` and the errors it was raised from or while handling, first error first."""
    chain: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and current not in chain:
        chain.append(current)
        explicit = current.__cause__ is not None or current.__suppress_context__
        current = current.__cause__ if explicit else current.__context__
    return chain[::-1]


def input_error_in(error: BaseException) -> InputError | None:
    """Return the first :class:`InputError` in ``error``'s chain, or ``None``.

    jsonargparse raises a constructor's error as the cause of its own ``ValueError`` ("Does not validate against
    any of the Union subtypes"), so an :class:`InputError` of a constructor arrives wrapped.
    """
    return next((cause for cause in _chain(error) if isinstance(cause, InputError)), None)


def explain(error: BaseException) -> tuple[str, int] | None:
    """Return the one-line message and exit code for an error (or one it was raised while handling), or ``None``."""
    for cause in _chain(error):
        if isinstance(cause, InputError):
            return str(cause), 2
        if isinstance(cause, TrainingDivergedError):
            return str(cause), 1
        if isinstance(cause, OSError) and cause.errno in SYSTEM_ERRNOS:
            where = cause.filename or "the run's files"
            return f"cannot write {where}: {cause.strerror or cause}", 2
    return None


def _quiet_system_errors_in_threads(hook_args: threading.ExceptHookArgs) -> None:
    """Leave a full disk in a writer thread (TensorBoard's) to the main thread's one-line message."""
    error = hook_args.exc_value
    if isinstance(error, OSError) and error.errno in SYSTEM_ERRNOS:
        return
    threading.__excepthook__(hook_args)


@contextmanager
def errors_in_one_line() -> Iterator[None]:
    """Turn an error :func:`explain` knows into ``lr-lightning: error: <message>`` on stderr and its exit code.

    Raises:
        SystemExit: with the code :func:`explain` gives.

    """
    threading.excepthook = _quiet_system_errors_in_threads
    try:
        yield
    except Exception as error:
        explained = explain(error)
        if explained is None:
            raise
        message, code = explained
        print(f"lr-lightning: error: {one_line(message)}", file=sys.stderr)
        raise SystemExit(code) from None
