"""Errors for mistakes in the user's input: the CLI prints their message and exits with status 2, no traceback."""

from __future__ import annotations

__all__ = ["InputError"]


class InputError(ValueError):
    """Bad input from the user (a file, a value, a checkpoint) with a message that names the problem.

    Raise it for mistakes a user can fix (a NaN in row 12 of ``data.csv``, a negative learning rate); let bugs
    raise anything else, so they keep their traceback.
    """
