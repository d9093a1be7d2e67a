r"""The affine layer of every linear model, on standardized features, and its coefficients in original units.

:math:`z = W \tilde{x} + b` on standardized features :math:`\tilde{x} = (x - \mu) / \sigma`. :math:`\mu, \sigma`
are buffers filled from the DataModule at the start of ``fit``, so a checkpoint carries them and the loaded model
maps *raw* features to layer outputs; ``coef_`` and ``intercept_`` fold them (and the model's output scaling) into
the weights, as scikit-learn reports a fitted model.
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from lr_lightning.data.contract import ScalingStatistics
from lr_lightning.errors import InputError, require
from lr_lightning.penalties import initialize_linear

__all__ = ["NOT_HYPERPARAMETERS", "AffineModel"]

#: Constructor arguments of the model classes that are not hyperparameters: the layer width, which each model
#: derives from its own arguments, and the optimizer, which is code, not a plain value a checkpoint may hold.
NOT_HYPERPARAMETERS = ("num_outputs", "optimizer")


class AffineModel(pl.LightningModule):
    """An affine layer on standardized features: raw features (B, D) in, layer outputs z (B, num_outputs) out.

    Args:
        in_features: D, the number of input features.
        num_outputs: width of the layer: K targets, one logit (binary) or one per class.
        bias: learn an intercept.
        feature_names: names of the D features; default ``x0, x1, ...``.
        init: weight initialisation, ``"default"`` (PyTorch's), ``"zeros"`` or ``"normal"``.
        init_std: standard deviation of the ``"normal"`` initialisation.

    Buffers (saved in every checkpoint):
        feature_mean: shape (D,), subtracted from raw features.
        feature_scale: shape (D,), divides the centred features.

    """

    # Buffers, registered in __init__; declared here because nn.Module.__getattr__ types them Tensor | Module.
    feature_mean: Tensor
    feature_scale: Tensor

    def __init__(
        self,
        in_features: int,
        num_outputs: int,
        bias: bool = True,
        feature_names: list[str] | None = None,
        init: str = "default",
        init_std: float = 0.01,
    ) -> None:
        super().__init__()
        # Here, in the innermost __init__, Lightning sees every constructor of the chain with its defaults (it
        # walks up the __init__ frames); the concrete class's values win.
        self.save_hyperparameters(ignore=list(NOT_HYPERPARAMETERS))
        require(in_features >= 1, "in_features", ">= 1", in_features)
        require(num_outputs >= 1, "the number of outputs", ">= 1", num_outputs)
        if feature_names is not None:
            require(len(feature_names) == in_features, "feature_names", f"{in_features} names", feature_names)
        self.feature_names = list(feature_names) if feature_names else [f"x{i}" for i in range(in_features)]
        self.linear = nn.Linear(in_features, num_outputs, bias=bias)
        initialize_linear(self.linear, init, init_std)
        self.register_buffer("feature_mean", torch.zeros(in_features))
        self.register_buffer("feature_scale", torch.ones(in_features))

    def __setattr__(self, name: str, value: Any) -> None:
        # The Trainer sets `_current_fx_name` (a string) around every hook call, about 44 times per training step;
        # nn.Module.__setattr__ looks for parameters, buffers and submodules of that name first, which costs ten
        # times a plain attribute write and about 5% of a small model's step.
        if name == "_current_fx_name":
            object.__setattr__(self, name, value)
        else:
            super().__setattr__(name, value)

    @property
    def fit_intercept(self) -> bool:
        """Whether the model learns an intercept (``bias``), in scikit-learn's words."""
        return self.linear.bias is not None

    @property
    def output_names(self) -> list[str]:
        """Names of the outputs used in per-output metric tags and prediction files."""
        return [f"y{i}" for i in range(self.linear.out_features)]

    def output_affine(self) -> tuple[Tensor, Tensor]:
        """Scale and shift (num_outputs,) taking z to output units; identity unless targets are standardized."""
        ones = torch.ones(self.linear.out_features, device=self.feature_mean.device)
        return ones, torch.zeros_like(ones)

    def standardize(self, features: Tensor) -> Tensor:
        """Raw features (B, D) -> standardized features (B, D)."""
        return (features - self.feature_mean) / self.feature_scale

    def layer_outputs(self, features: Tensor) -> Tensor:
        r"""Raw features (B, D) -> layer outputs z (B, num_outputs) of the layer on standardized features.

        :math:`z = W (x - \mu) / \sigma + b` is computed as :math:`z = (W / \sigma) x + (b - (W / \sigma) \mu)`:
        the same function of the same parameters W and b (so the same gradients and optimizer steps in
        standardized space), but the scaling touches the (num_outputs, D) weights instead of the (B, D) batch,
        which saves two passes over every batch.
        """
        weight = self.linear.weight / self.feature_scale  # (K, D)
        shift = weight @ self.feature_mean  # (K,)
        bias = self.linear.bias - shift if self.linear.bias is not None else -shift
        return F.linear(features, weight, bias)

    def set_scaling(self, statistics: ScalingStatistics) -> None:
        """Store the feature scaling fitted by the DataModule (mean and scale of shape (D,) each)."""
        feature_mean, feature_scale = statistics.feature_mean, statistics.feature_scale
        expected = (self.linear.in_features,)
        if tuple(feature_mean.shape) != expected or tuple(feature_scale.shape) != expected:
            raise InputError(
                f"the data has {tuple(feature_mean.shape)[-1]} features but the model has in_features={expected[0]}"
            )
        self.store_buffer("feature_mean", feature_mean)
        self.store_buffer("feature_scale", feature_scale)

    def store_buffer(self, name: str, value: Tensor) -> None:
        """Replace buffer ``name`` by ``value``, keeping the more precise of their dtypes.

        ``setup`` runs before the precision plugin converts the module (``.double()`` under ``64-true``): copying
        float64 statistics into the float32 buffers of a new model would round them through float32 first.
        """
        buffer = self.get_buffer(name)
        dtype = torch.promote_types(buffer.dtype, value.dtype)
        self.register_buffer(name, value.detach().to(device=buffer.device, dtype=dtype, copy=True))

    @property
    def coef_(self) -> np.ndarray:
        """Weights in original units, shape (num_outputs, D), as scikit-learn's ``coef_``."""
        return self._raw_affine()[0]

    @property
    def intercept_(self) -> np.ndarray:
        """Intercepts in original units, shape (num_outputs,), as scikit-learn's ``intercept_``."""
        return self._raw_affine()[1]

    @torch.no_grad()
    def _raw_affine(self) -> tuple[np.ndarray, np.ndarray]:
        r"""Fold the scaling into the layer: :math:`s \odot (W (x - \mu) / \sigma + b) + t = W' x + b'`."""
        weight = self.linear.weight.double()  # (K, D)
        bias = self.linear.bias.double() if self.linear.bias is not None else torch.zeros(weight.shape[0])
        scale, shift = (t.double().cpu() for t in self.output_affine())
        weight_per_feature = weight.cpu() / self.feature_scale.double().cpu()  # (K, D)
        coef = scale[:, None] * weight_per_feature
        intercept = scale * (bias.cpu() - weight_per_feature @ self.feature_mean.double().cpu()) + shift
        return coef.numpy(), intercept.numpy()
