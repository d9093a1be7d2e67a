"""Multi-output regression: the linear model, reporting every metric per target by name."""

from __future__ import annotations

from lr_lightning.models.linear import LinearRegression

__all__ = ["MultiOutputRegression"]


class MultiOutputRegression(LinearRegression):
    """:class:`LinearRegression` with K targets whose metrics are also logged per target.

    Besides ``val_mse``, ``val_mae`` and ``val_r2`` (means over targets) it logs ``val_mse/<target>`` and so on
    for every target name, so TensorBoard shows one curve per target (e.g. ``val_r2/flavour``, ``val_r2/crust``
    on the sourdough data). The arguments are those of :class:`LinearRegression`.
    """

    per_output_metrics = True
