"""A bound on what a YAML config may expand to: aliases that multiply ("billion laughs") are refused.

YAML anchors and aliases let ten lines stand for billions of values: ``a: &a [x, x, x, x, x, x, x, x, x]``,
``b: &b [*a, *a, ...]`` and so on. PyYAML builds such a document cheaply (an alias is a reference), but the
parser copies and checks every value, which takes gigabytes and minutes. :func:`check_yaml_size` counts the values
a document would have once every alias is expanded, in time linear in its size, and refuses it above
:data:`MAX_CONFIG_VALUES`. :func:`install` puts that check in front of jsonargparse's YAML loader, which reads the
``--config`` files and every option's value.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml
from jsonargparse import get_loader, set_loader

from lr_lightning.errors import InputError

__all__ = ["MAX_CONFIG_VALUES", "check_command_line", "check_yaml_size", "install"]

#: Values (scalars, lists, mappings) a config may expand to: a config with 10,000 feature names is ~10^4.
MAX_CONFIG_VALUES = 1_000_000


class _TooLarge(Exception):
    """The document expands past :data:`MAX_CONFIG_VALUES`."""


def _expanded_size(node: yaml.Node, sizes: dict[int, int]) -> int:
    """Values under ``node`` with aliases expanded; ``sizes`` memoizes shared (aliased) nodes by identity."""
    known = sizes.get(id(node))
    if known is not None:
        return known
    if isinstance(node, yaml.SequenceNode):
        size = 1 + sum(_expanded_size(child, sizes) for child in node.value)
    elif isinstance(node, yaml.MappingNode):
        size = 1 + sum(_expanded_size(key, sizes) + _expanded_size(value, sizes) for key, value in node.value)
    else:
        size = 1
    sizes[id(node)] = size
    if size > MAX_CONFIG_VALUES:
        raise _TooLarge
    return size


def check_yaml_size(text: str, where: str) -> None:
    """Raise :class:`InputError` when the YAML document ``text`` expands to more than :data:`MAX_CONFIG_VALUES`.

    Text that is not valid YAML passes: the parser reports it as it always does.
    """
    if "*" not in text:  # no alias: the document is no larger than its text
        return
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        if node is not None:
            _expanded_size(node, {})
    except yaml.YAMLError:
        return
    except _TooLarge:
        raise InputError(
            f"{where}: its YAML aliases expand to more than {MAX_CONFIG_VALUES:,} values (an alias bomb?); refused"
        ) from None
    except RecursionError:
        raise InputError(f"{where}: the YAML is nested too deeply to be a config; refused") from None


#: The loaders :func:`install` has put in front of jsonargparse's, so that a second call leaves them be.
_INSTALLED: list[Callable[[Any], Any]] = []


def install() -> None:
    """Check every YAML value jsonargparse loads with :func:`check_yaml_size` first (once per process)."""
    inner = get_loader("yaml")
    if any(inner is loader for loader in _INSTALLED):
        return

    def bounded_yaml_load(stream: Any) -> Any:
        if isinstance(stream, str):
            check_yaml_size(stream, "a YAML config or option value")
        return inner(stream)

    _INSTALLED.append(bounded_yaml_load)
    set_loader("yaml", bounded_yaml_load, exceptions=(yaml.YAMLError,))


def check_command_line(args: Sequence[str]) -> None:
    """Check command-line ``args`` with :func:`check_yaml_size`: each ``--config`` file and each option's value.

    The loader's own check (:func:`install`) catches the same, but inside the parser, which would wrap the
    message in its usage text; here it is one line naming the file or the option.
    """
    for index, arg in enumerate(args):
        option, _, inline = arg.partition("=")
        if option == "--config":
            path = Path(inline) if inline else Path(args[index + 1]) if index + 1 < len(args) else None
            try:
                text = path.read_text(encoding="utf-8") if path is not None else ""
            except (OSError, UnicodeDecodeError):
                continue  # not a readable file (or inline YAML): the parser reports it, or the loader checks it
            check_yaml_size(text, str(path))
        elif index > 0 and not arg.startswith("--"):
            check_yaml_size(arg, f"the value of {args[index - 1]}")
        elif inline:
            check_yaml_size(inline, f"the value of {option}")
