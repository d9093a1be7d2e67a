"""What a DataModule knows about its data before ``setup``: names, and what would stop each stage.

Kept after the source arrays are released; the CLI links the names into the model, and each stage is refused here
before anything is written.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from lr_lightning.data.contract import ArrayData
from lr_lightning.errors import InputError

__all__ = ["DataDescription", "DataNames"]


@dataclass(frozen=True)
class DataDescription:
    """Names of the data and the problems found for each stage.

    Attributes:
        source: where the data came from, for messages.
        feature_names: the D feature names.
        target_names: the K target names, or the label column's name (classification).
        class_names: the C class names (classification only).
        too_large_for_float32: the message naming a value float32 cannot hold; raised unless training in float64.
        split_problems: stage (``"fit"``, ``"validate"``, ``"test"``; ``"any"``: every stage) -> why it cannot run.
        weighted: the rows carry sample weights.

    """

    source: str
    feature_names: list[str]
    target_names: list[str]
    class_names: list[str] | None
    too_large_for_float32: str | None
    split_problems: dict[str, str]
    weighted: bool = False

    @classmethod
    def of(cls, data: ArrayData, split_problems: dict[str, str]) -> DataDescription:
        """Describe checked arrays, with the problems :func:`~lr_lightning.data.checks.stage_problems` found."""
        return cls(
            source=data.source,
            feature_names=list(data.feature_names),
            target_names=list(data.target_names),
            class_names=list(data.class_names) if data.class_names is not None else None,
            too_large_for_float32=data.too_large_for_float32,
            split_problems=split_problems,
            weighted=data.weights is not None,
        )

    def check_stage(self, stage: str, dtype: torch.dtype) -> None:
        """Raise :class:`InputError` for what stops ``stage`` in ``dtype``.

        Values beyond float32's range (about 3.4e38) are refused unless the trainer runs in float64.
        """
        problem = self.split_problems.get("any") or self.split_problems.get(stage)
        if problem is not None:
            raise InputError(problem)
        if self.too_large_for_float32 is not None and dtype != torch.float64:
            raise InputError(self.too_large_for_float32)


class DataNames:
    """The names and sizes a DataModule exposes, by task; the CLI links them into the model.

    ``"regression"`` data exposes ``num_targets`` and ``target_names`` (targets (N, K), floating point);
    ``"classification"`` data exposes ``num_classes`` and ``class_names`` (labels (N,), int64). The other pair is
    *absent* (``hasattr`` is false), which is how the CLI knows which links into the model apply.
    ``output_names`` is whichever pair's names apply.
    """

    task: str

    @property
    def description(self) -> DataDescription:
        """The data's description (a subclass loads the data the first time)."""
        raise NotImplementedError

    def _require_task(self, task: str, attribute: str) -> None:
        # AttributeError, not another error: `hasattr(dm, "num_classes")` must be False for regression data, so
        # the CLI skips the link to a model argument that does not exist.
        if self.task != task:
            raise AttributeError(f"{type(self).__name__} holds {self.task} data, which has no {attribute}")

    @property
    def num_features(self) -> int:
        """D, the number of input features."""
        return len(self.description.feature_names)

    @property
    def feature_names(self) -> list[str]:
        """Names of the D features."""
        return list(self.description.feature_names)

    @property
    def num_targets(self) -> int:
        """K, the number of regression targets (regression only)."""
        return len(self.target_names)

    @property
    def target_names(self) -> list[str]:
        """Names of the K targets (regression only)."""
        self._require_task("regression", "target_names")
        return list(self.description.target_names)

    @property
    def num_classes(self) -> int:
        """C, the number of classes (classification only)."""
        return len(self.class_names)

    @property
    def class_names(self) -> list[str]:
        """Names of the C classes; label ``i`` is ``class_names[i]`` (classification only)."""
        self._require_task("classification", "class_names")
        names = self.description.class_names
        assert names is not None
        return list(names)

    @property
    def target_columns(self) -> list[str]:
        """The target columns' names: the K target names, or the label column's name (classification)."""
        return list(self.description.target_names)

    @property
    def output_names(self) -> list[str]:
        """The target names (regression) or the class names (classification)."""
        return self.target_names if self.task == "regression" else self.class_names
