"""The CLI's one rule for the task: the model says what it solves, and the data follows or is refused.

A model class declares its task (:data:`lr_lightning.data.contract.TASKS`). A DataModule whose task is an option
(``FileDataModule``, ``task: null`` by default) takes the model's; one whose task is fixed (sourdough is
regression) or set to the other task is refused with one line naming the option to change, before anything is
instantiated or written.
"""

from __future__ import annotations

from typing import Any

from lr_lightning.config_checks import named_class
from lr_lightning.data.base import InMemoryDataModule
from lr_lightning.errors import InputError
from lr_lightning.models.base import LinearModelBase

__all__ = ["match_data_task_to_model"]

#: The models to suggest for data of each task.
MODELS_FOR = {"regression": "LinearRegression or MultiOutputRegression", "classification": "LogisticRegression"}


def _class_path(config: Any, key: str) -> str | None:
    section = config.get(key)
    return section.get("class_path") if section is not None else None


def match_data_task_to_model(config: Any) -> None:
    """Give the data the model's task when it has none; raise :class:`InputError` when the two cannot work.

    Args:
        config: the subcommand's parsed config (``model`` and ``data`` in subclass mode); ``data.init_args.task``
            is set in place when it is ``null``.

    """
    model_class, data_class = (named_class(_class_path(config, key)) for key in ("model", "data"))
    if model_class is None or data_class is None or not issubclass(model_class, LinearModelBase):
        return  # a model of another package: nothing to match
    model_task, model_name = model_class.task, model_class.__name__
    init_args = config["data"].get("init_args")
    if init_args is not None and "task" in init_args:
        if init_args["task"] is None:
            init_args["task"] = model_task
            return
        if init_args["task"] != model_task:
            raise InputError(
                f"{model_name} is a {model_task} model but data.init_args.task is {init_args['task']!r}; set "
                f"data.init_args.task: {model_task} (or leave it out), or use a {init_args['task']} model "
                f"({MODELS_FOR.get(init_args['task'], 'another model')})"
            )
        return
    if issubclass(data_class, InMemoryDataModule) and data_class.task != model_task:
        raise InputError(
            f"{model_name} is a {model_task} model but {data_class.__name__} holds {data_class.task} data; use "
            f"--model {MODELS_FOR.get(data_class.task, 'another model')}, or other data"
        )
