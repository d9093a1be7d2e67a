"""Run folders ``<save_dir>/<experiment>/version_N``: claimed atomically, never shared, and found again later.

* :func:`claim_next_version` creates the next ``version_N`` folder with an exclusive ``mkdir`` and retries on a
  collision, so two runs started at the same instant never get the same folder (a listing followed by a create
  would race).
* a ``validate``, ``test`` or ``predict`` run from a fit's checkpoint gets a folder inside that fit's run folder,
  ``version_N/test_0``, ``version_N/predict_0``, ... (:func:`fit_run_folder` finds the fit's folder from the
  checkpoint's path, :func:`claim_evaluation_folder` claims the next one the same way), so TensorBoard lists the
  evaluation under the fit that made the checkpoint.
* :func:`refuse_used_folder` is the rule "a run never writes into another run's folder": a folder a run is told to
  write into must be missing or empty.
* :func:`newest_fit_checkpoint` finds the best or the latest checkpoint of an experiment's newest fit, so
  ``--ckpt_path best`` and ``--ckpt_path last`` work across processes.

No Lightning here: plain paths.
"""

from __future__ import annotations

import os
from pathlib import Path

from lr_lightning.errors import InputError

__all__ = [
    "CHECKPOINTS_FOLDER",
    "EVALUATIONS",
    "VERSION_PREFIX",
    "check_writable",
    "claim_evaluation_folder",
    "claim_next_folder",
    "claim_next_version",
    "evaluation_prefix",
    "fit_run_folder",
    "newest_fit_checkpoint",
    "numbered_folders",
    "refuse_used_folder",
    "version_numbers",
]

VERSION_PREFIX = "version_"

#: The folder of a run folder that holds its checkpoints (``version_N/checkpoints/*.ckpt``, as the CLI saves them).
CHECKPOINTS_FOLDER = "checkpoints"

#: The subcommands that run a trained model; from a fit's checkpoint, each gets ``version_N/<subcommand>_K``.
EVALUATIONS = ("validate", "test", "predict")

#: ``--ckpt_path`` values that name a checkpoint of the newest fit instead of a file.
CHECKPOINT_ALIASES = ("best", "last")


def numbered_folders(parent: Path, prefix: str) -> list[int]:
    """Return the N of every ``<prefix>N`` folder in ``parent``, ascending (none when ``parent`` is missing)."""
    try:
        entries = list(os.scandir(parent))
    except (FileNotFoundError, NotADirectoryError):
        return []
    numbers = []
    for entry in entries:
        suffix = entry.name[len(prefix) :]
        if entry.name.startswith(prefix) and suffix.isdigit() and entry.is_dir():
            numbers.append(int(suffix))
    return sorted(numbers)


def version_numbers(experiment_dir: Path) -> list[int]:
    """Return the N of every ``version_N`` folder in ``experiment_dir``, ascending (none when it is missing)."""
    return numbered_folders(experiment_dir, VERSION_PREFIX)


def claim_next_folder(parent: Path, prefix: str) -> int:
    """Create ``parent/<prefix>N`` for the next free N (after the largest one there) and return N.

    ``mkdir`` without ``exist_ok`` fails when the folder exists, whoever created it, so a folder returned here was
    created by this call: it belongs to this run alone. ``parent`` is created if missing.
    """
    parent.mkdir(parents=True, exist_ok=True)
    numbers = numbered_folders(parent, prefix)
    number = numbers[-1] + 1 if numbers else 0
    while True:
        try:
            (parent / f"{prefix}{number}").mkdir()
        except FileExistsError:
            number += 1
            continue
        return number


def claim_next_version(experiment_dir: Path) -> int:
    """Create ``experiment_dir/version_N`` for the next free N and return N (see :func:`claim_next_folder`)."""
    return claim_next_folder(experiment_dir, VERSION_PREFIX)


def evaluation_prefix(subcommand: str) -> str:
    """``test_`` for ``test``: the prefix of an evaluation's folders inside a fit's run folder."""
    return f"{subcommand}_"


def claim_evaluation_folder(fit_folder: Path, subcommand: str) -> str:
    """Create ``fit_folder/<subcommand>_K`` for the next free K and return its name (``test_0``, ``predict_3``)."""
    prefix = evaluation_prefix(subcommand)
    return f"{prefix}{claim_next_folder(fit_folder, prefix)}"


def fit_run_folder(ckpt_path: str | os.PathLike) -> Path | None:
    """Return the run folder of the fit that saved ``ckpt_path``, or ``None`` when the path is not in one.

    The CLI saves a fit's checkpoints as ``<save_dir>/<experiment>/version_N/checkpoints/<file>.ckpt``; for such a
    path this returns ``<save_dir>/<experiment>/version_N``, as the path spells it (normalized, not resolved: a
    symbolic link elsewhere is not followed). Any other path (a copied file, an evaluation's sub-folder) gives
    ``None``.
    """
    path = Path(os.path.normpath(os.fspath(ckpt_path)))
    checkpoints, run = path.parent, path.parent.parent
    suffix = run.name[len(VERSION_PREFIX) :]
    if checkpoints.name != CHECKPOINTS_FOLDER or not run.name.startswith(VERSION_PREFIX) or not suffix.isdigit():
        return None
    return run if run.is_dir() else None


def refuse_used_folder(folder: str | os.PathLike, option: str, value: object, what: str) -> None:
    """Raise :class:`InputError` when ``folder`` exists and holds anything (it is another run's).

    Args:
        folder: where the run would write.
        option: the option that chose it, named in the message (``latest_checkpoint.dirpath``).
        value: the option's value.
        what: what the run would write there, for the message.

    """
    path = Path(folder)
    if path.is_dir() and any(path.iterdir()):
        raise InputError(
            f"{option} {value}: {path} already holds another run's files, and this run would write {what} there; "
            f"choose a new or empty folder, or leave {option} unset (every run gets a version folder of its own)"
        )


def check_writable(folder: str | os.PathLike, option: str) -> None:
    """Raise :class:`InputError` unless runs can be created in ``folder`` (or in its nearest existing parent).

    A probe file is created and removed there, since permission bits do not tell (root ignores them; a read-only
    mount refuses everyone).
    """
    path = Path(folder).absolute()
    existing = path
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise InputError(f"{option} {folder}: {existing} is a file, not a folder")
    try:
        probe = existing / f".lr-lightning-probe-{os.getpid()}"
        probe.touch(exist_ok=False)
        probe.unlink()
    except OSError as error:
        raise InputError(f"{option} {folder}: cannot write there ({error.strerror or error})") from None


def newest_fit_checkpoint(experiment_dir: Path, which: str) -> Path:
    """Return the ``best`` or ``last`` checkpoint of the newest run in ``experiment_dir`` that saved any.

    ``best`` is the ``best-*.ckpt`` file (the best epoch by ``val_loss``), ``last`` is ``latest.ckpt`` (the last
    finished epoch). Runs are ordered by their version number; runs that wrote no checkpoint (validate, test,
    predict from a file outside a run folder) are passed over, and the evaluations inside a fit's folder
    (``version_N/test_0``) are no ``version_N`` folders, so they are never taken for a fit.

    Raises:
        InputError: no run of the experiment has saved that checkpoint.

    """
    if which not in CHECKPOINT_ALIASES:
        raise ValueError(f"which must be one of {CHECKPOINT_ALIASES}, got {which!r}")
    for number in reversed(version_numbers(experiment_dir)):
        folder = experiment_dir / f"{VERSION_PREFIX}{number}" / CHECKPOINTS_FOLDER
        if not folder.is_dir():
            continue
        if which == "last":
            candidates = [folder / "latest.ckpt"] if (folder / "latest.ckpt").is_file() else []
        else:
            candidates = sorted(folder.glob("best-*.ckpt"), key=lambda p: p.stat().st_mtime)
        if candidates:
            return candidates[-1]
    raise InputError(
        f"--ckpt_path {which}: no fit of the experiment in {experiment_dir} has saved a "
        f"{'best-*.ckpt' if which == 'best' else 'latest.ckpt'} checkpoint; run fit first or pass a checkpoint file"
    )
