"""Errors for mistakes in the user's input: the CLI prints their message and exits with status 2, no traceback."""

from __future__ import annotations

__all__ = ["InputError", "one_line", "require"]


class InputError(ValueError):
    """Bad input from the user (a file, a value, a checkpoint) with a message that names the problem.

    Raise it for mistakes a user can fix (a NaN in row 12 of ``data.csv``, a negative learning rate); let bugs
    raise anything else, so they keep their traceback.
    """


def one_line(message: object) -> str:
    """Return ``str(message)`` with its line breaks and runs of spaces folded into single spaces.

    Messages of other libraries (numpy quoting a garbled header, Lightning's multi-line hints) become one line, as
    an :class:`InputError` must be.
    """
    return " ".join(str(message).split())


def require(valid: bool, option: str, must: str, value: object) -> None:
    """Raise :class:`InputError` ``"<option> must be <must>, got <value>"`` unless ``valid``: a constructor's check.

    Example: ``require(batch_size >= 1, "batch_size", ">= 1", batch_size)``.
    """
    if not valid:
        raise InputError(f"{option} must be {must}, got {value!r}")
