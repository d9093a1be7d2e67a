"""``lr-lightning summary --ckpt_path CKPT [--json]``: print the inference table a fit stored in its checkpoint.

The end of ``fit`` stores its inference table (:mod:`lr_lightning.summary`) in the checkpoints of its final
weights (``latest.ckpt``, and ``best-*.ckpt`` when the best epoch is the last) as plain values and tensors;
this command prints it again, the same text ``fit`` printed (``summary.txt``) or, with ``--json``, the same JSON
as ``summary.json``. The file is read like every checkpoint (:func:`lr_lightning.checkpoint.load_checkpoint`:
local, ``weights_only=True``), its record and model checked
(:func:`~lr_lightning.models.checkpoint_record.read_record`,
:func:`~lr_lightning.checkpoint_contents.check_model_checkpoint`) and the stored table checked against the layout
lr_lightning writes (:func:`~lr_lightning.models.checkpoint_record.read_inference`). Nothing is computed and no
run folder is made.

Errors are one line and exit 2: a missing or unreadable file, a checkpoint without a table (saved before
lr_lightning stored it, or by a fit with ``summary.enabled: false``), a forged record or table, a bad option.
:func:`lr_lightning.cli.main` dispatches ``summary`` here before LightningCLI parses (its subcommands are
Lightning's trainer methods).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from typing import NoReturn

from lr_lightning.errors import InputError

__all__ = ["SUBCOMMAND", "summary_main"]

#: The subcommand's name on the command line.
SUBCOMMAND = "summary"


class _Parser(argparse.ArgumentParser):
    """argparse whose errors are :class:`InputError` (one line, exit 2, as every ``lr-lightning`` error)."""

    def error(self, message: str) -> NoReturn:
        raise InputError(f"{SUBCOMMAND}: {message} (usage: lr-lightning summary --ckpt_path CKPT [--json])")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=f"lr-lightning {SUBCOMMAND}",
        description="Print the inference table a fit stored in its checkpoint (the table fit printed).",
    )
    parser.add_argument("--ckpt_path", required=True, help="a checkpoint of a fit's final weights (latest.ckpt)")
    parser.add_argument("--json", action="store_true", help="print the table as JSON (what summary.json holds)")
    return parser


def summary_text(ckpt_path: str, as_json: bool = False) -> str:
    """Return the stored table of ``ckpt_path`` as text, or as the JSON of ``summary.json`` (indented).

    Raises:
        InputError: see the module docstring.

    """
    from lr_lightning import models
    from lr_lightning.checkpoint import load_checkpoint
    from lr_lightning.checkpoint_contents import check_model_checkpoint
    from lr_lightning.models.checkpoint_record import read_inference, read_record

    checkpoint = load_checkpoint(ckpt_path)
    record = read_record(checkpoint, ckpt_path)
    check_model_checkpoint(checkpoint, ckpt_path, getattr(models, record.model_class), strict=False)
    table = read_inference(checkpoint, ckpt_path)
    if as_json:
        return json.dumps(table.to_json(), indent=2, allow_nan=False)
    return table.text()


def summary_main(args: Sequence[str]) -> None:
    """Run ``lr-lightning summary ARGS`` (the arguments after ``summary``); print the table on stdout.

    Raises:
        InputError: see the module docstring (:func:`lr_lightning.cli.main` turns it into one line, exit 2).

    """
    options = _parser().parse_args(list(args))
    print(summary_text(options.ckpt_path, options.json))
