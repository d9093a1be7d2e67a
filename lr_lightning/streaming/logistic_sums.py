r"""Mergeable sums of one streaming pass for logistic regression: the Newton pass and the line-search pass.

The maths, the parameter layout and the limits are in :mod:`lr_lightning.streaming.newton_logistic`, which uses
these and re-exports them. Pure NumPy (BLAS products per chunk), no Lightning.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from lr_lightning.errors import InputError

__all__ = ["DEFAULT_STEPS", "MAX_PARAMETERS", "Layout", "LineSearchSums", "NewtonSums"]

#: Largest parameter count K (D + 1): the Hessian holds its square in float64 (4096² × 8 bytes = 128 MB).
MAX_PARAMETERS = 4096
#: Trial step sizes of the line search, largest first: 1, 1/2, ..., 2^-20.
DEFAULT_STEPS = tuple(2.0**-j for j in range(21))


@dataclass(frozen=True)
class Layout:
    """The parameter vector's shape: ``num_outputs`` K logits (1 binary, C multi-class), D features, bias or not.

    Theta (P,) is ``A.reshape(-1)``, A = [W, b] of shape (K, width): entry ``k * width + j`` is logit k's weight on
    standardized feature j, or its bias for j = D.

    Raises:
        InputError: K (D + 1) above :data:`MAX_PARAMETERS`.

    """

    num_outputs: int
    num_features: int
    fit_intercept: bool = True

    def __post_init__(self) -> None:
        if self.size > MAX_PARAMETERS:
            raise InputError(
                f"Newton's method holds a dense Hessian of (K (D + 1))² float64 numbers; {self.num_outputs} logits "
                f"and {self.num_features} features make {self.size} parameters, above {MAX_PARAMETERS} (a 128 MB "
                "Hessian): use a gradient optimizer"
            )

    @classmethod
    def for_classes(cls, num_classes: int, num_features: int, fit_intercept: bool = True) -> Layout:
        """Return the layout of C classes: one logit if C = 2, C logits otherwise."""
        return cls(1 if num_classes == 2 else num_classes, num_features, fit_intercept)

    @property
    def width(self) -> int:
        """Columns of A: D + 1 with bias, D without."""
        return self.num_features + int(self.fit_intercept)

    @property
    def size(self) -> int:
        """P = K * width, the length of theta."""
        return self.num_outputs * self.width

    def pack(self, weight: np.ndarray, bias: np.ndarray | None = None) -> np.ndarray:
        """Weights (K, D) and bias (K,) -> theta (P,) float64."""
        columns = [np.asarray(weight, dtype=np.float64).reshape(self.num_outputs, self.num_features)]
        if self.fit_intercept:
            columns.append(np.zeros((self.num_outputs, 1)) if bias is None else np.reshape(bias, (-1, 1)))
        return np.concatenate(columns, axis=1).reshape(-1)

    def unpack(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Theta (P,) -> weights (K, D) and bias (K,), or None without bias."""
        matrix = np.asarray(theta, dtype=np.float64).reshape(self.num_outputs, self.width)
        bias = matrix[:, self.num_features].copy() if self.fit_intercept else None
        return matrix[:, : self.num_features].copy(), bias

    def penalized(self) -> np.ndarray:
        """Boolean mask (P,) of the weight entries (the bias entries are not penalized)."""
        return np.tile(np.arange(self.width) < self.num_features, self.num_outputs)


def _prepare(
    layout: Layout,
    features: ArrayLike,
    labels: ArrayLike,
    mean: ArrayLike | None,
    scale: ArrayLike | None,
    weights: ArrayLike | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Chunk -> design (m, width) on standardized features, labels (m,) int64, weights (m,) float64 or None.

    Raw features (n, D), labels (n,) and row weights (n,) or None; the m rows kept are those of positive weight (all
    n without weights). A zero-weight row adds nothing to any sum, so it is dropped before the arithmetic: its
    loss cannot turn a 0 weight into NaN, and its margin cannot count as a misclassified row.
    """
    x = np.asarray(features, dtype=np.float64).reshape(-1, layout.num_features)
    y = np.asarray(labels).reshape(-1).astype(np.int64)
    if len(y) != len(x):
        raise InputError(f"a chunk has {len(x)} rows of features but {len(y)} labels")
    classes = 2 if layout.num_outputs == 1 else layout.num_outputs
    if len(y) and (y.min() < 0 or y.max() >= classes):
        raise InputError(f"labels must be integers in [0, {classes - 1}], got {y.min()} to {y.max()}")
    w = None
    if weights is not None:
        w = np.asarray(weights, dtype=np.float64).reshape(-1)
        if len(w) != len(y):
            raise InputError(f"a chunk has {len(y)} rows but {len(w)} row weights")
        invalid = ~(np.isfinite(w) & (w >= 0))
        if invalid.any():
            row = int(np.argmax(invalid))
            raise InputError(f"row weights must be finite and >= 0; row {row} of a chunk has weight {w[row]}")
        positive = w > 0
        if not positive.all():
            x, y, w = x[positive], y[positive], w[positive]
    design = np.ones((len(x), layout.width))
    standardized = design[:, : layout.num_features]
    standardized[...] = x
    if mean is not None:
        standardized -= np.asarray(mean, dtype=np.float64)
    if scale is not None:
        standardized /= np.asarray(scale, dtype=np.float64)
    return design, y, w


def _weigh(values: np.ndarray, weights: np.ndarray | None) -> np.ndarray:
    """Return per-row values (n,) or (n, K) times the row weights (n,); the values themselves without weights."""
    if weights is None:
        return values
    return values * (weights if values.ndim == 1 else weights[:, None])


def _softplus(x: np.ndarray) -> np.ndarray:
    """Return log(1 + e^x) (n,), stable: max(x, 0) + log1p(e^-|x|) (faster than ``np.logaddexp(0, x)``)."""
    out = np.exp(-np.abs(x))
    np.log1p(out, out=out)
    out += np.maximum(x, 0.0)
    return out


def _losses(logits: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Logits (n, K), labels (n,) -> losses (n,), non-positive margins (n,) bool, and s (n, 1) or z - z_y (n, C)."""
    if logits.shape[1] == 1:
        signed = np.where(y == 1, logits[:, 0], -logits[:, 0])  # s = (2y - 1) z
        return _softplus(-signed), signed <= 0, signed[:, None]  # loss log(1 + e^-s), stable
    shifted = logits - np.take_along_axis(logits, y[:, None], axis=1)  # z_c - z_y, 0 at y
    others = shifted.copy()
    np.put_along_axis(others, y[:, None], -np.inf, axis=1)
    top = others.max(axis=1)  # the best competitor's logit minus z_y: >= 0 is a non-positive margin
    rest = np.log(np.exp(others - top[:, None]).sum(axis=1)) + top  # log sum_{c != y} e^{z_c - z_y}
    return _softplus(rest), top >= 0, shifted  # loss log(1 + e^rest), stable


class NewtonSums:
    r"""Sums of one pass at fixed theta: rows, weights, losses, non-positive margins, gradients (P,), Hessians (P, P).

    Float64 sums over rows of :math:`w_i \ell_i`, :math:`w_i \nabla \ell_i` and :math:`w_i \nabla^2 \ell_i`
    (formulas in :mod:`~lr_lightning.streaming.newton_logistic`; :math:`w_i = 1` without row weights), unpenalized
    and not divided by :math:`\sum_i w_i`; :func:`~lr_lightning.streaming.newton_logistic.newton_step` adds the
    penalty. ``count`` is the number of rows of positive weight, ``weight`` their weight :math:`\sum_i w_i` (equal
    to ``count`` without weights), ``nonpositive`` the rows of positive weight with a margin <= 0. Merge ranks by
    summing :meth:`to_vector` (``[count, loss, nonpositive, gradient, hessian.ravel(), weight]``) and
    :meth:`from_vector`.
    """

    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        self.count = self.loss = self.nonpositive = self.weight = 0.0
        self.gradient = np.zeros(layout.size)
        self.hessian = np.zeros((layout.size, layout.size))

    def add(
        self,
        features: ArrayLike,
        labels: ArrayLike,
        theta: np.ndarray,
        mean: ArrayLike | None = None,
        scale: ArrayLike | None = None,
        weights: ArrayLike | None = None,
    ) -> None:
        """Add a chunk: raw features (n, D), labels (n,) in 0..C-1, at theta (P,); mean and scale (D,) standardize.

        ``weights`` (n,) are finite row weights >= 0 (sample weights, times class weights), None for all 1 (the
        same sums, bit for bit, as weights of 1). Arrays (or CPU tensors) of any numeric dtype; the arithmetic is
        float64 (NumPy, BLAS products).

        Raises:
            InputError: mismatched lengths, labels outside 0..C-1, or a negative or non-finite weight.

        """
        layout = self.layout
        design, y, w = _prepare(layout, features, labels, mean, scale, weights)
        width, num_outputs = layout.width, layout.num_outputs
        logits = design @ np.asarray(theta, np.float64).reshape(num_outputs, width).T  # (n, K)
        losses, nonpositive, shifted = _losses(logits, y)
        self.count += len(y)
        self.weight += float(len(y)) if w is None else float(w.sum())
        self.loss += float(_weigh(losses, w).sum())
        self.nonpositive += float(nonpositive.sum())
        if num_outputs == 1:  # p - y = -(2y - 1) sigmoid(-s); p (1 - p) = sigmoid(s) sigmoid(-s), both stable
            signed = shifted[:, 0]
            log_sigmoid = -_softplus(signed), -losses  # log sigmoid(-s), log sigmoid(s)
            residual = np.where(y == 1, -1.0, 1.0) * np.exp(log_sigmoid[0])
            curvature = np.exp(log_sigmoid[0] + log_sigmoid[1])
            self.gradient += design.T @ _weigh(residual, w)
            self.hessian += (design * _weigh(curvature, w)[:, None]).T @ design
            return
        probabilities = np.exp(shifted - losses[:, None])  # e^{z_c - logsumexp z}, (n, C)
        rows, top = np.arange(len(y)), probabilities.argmax(axis=1)
        complement = 1.0 - probabilities  # 1 - p_c; for the most probable class, the sum of the others:
        complement[rows, top] = probabilities.sum(axis=1) - probabilities[rows, top]
        residual = probabilities.copy()
        residual[rows, y] = -complement[rows, y]  # p - e_y without cancellation
        self.gradient += (_weigh(residual, w).T @ design).reshape(-1)
        for k in range(num_outputs):
            for m in range(k, num_outputs):
                curvature = probabilities[:, k] * (complement[:, k] if m == k else -probabilities[:, m])
                block = (design * _weigh(curvature, w)[:, None]).T @ design
                self.hessian[k * width : (k + 1) * width, m * width : (m + 1) * width] += block
                if m != k:
                    self.hessian[m * width : (m + 1) * width, k * width : (k + 1) * width] += block.T

    def to_vector(self) -> np.ndarray:
        """Return the state as one float64 vector of length 4 + P + P², to all-reduce with SUM."""
        head = np.array([self.count, self.loss, self.nonpositive])
        return np.concatenate([head, self.gradient, self.hessian.reshape(-1), [self.weight]])

    @classmethod
    def from_vector(cls, layout: Layout, vector: np.ndarray) -> NewtonSums:
        """Inverse of :meth:`to_vector` (of a sum of them: the merged state)."""
        vector = np.asarray(vector, dtype=np.float64)
        sums, size = cls(layout), layout.size
        if vector.shape != (4 + size + size * size,):
            raise ValueError(f"a NewtonSums vector of {size} parameters has {4 + size + size * size} entries")
        sums.count, sums.loss, sums.nonpositive = (float(v) for v in vector[:3])
        sums.gradient = vector[3 : 3 + size].copy()
        sums.hessian = vector[3 + size : 3 + size + size * size].reshape(size, size).copy()
        sums.weight = float(vector[-1])
        return sums

    def merge(self, other: NewtonSums) -> NewtonSums:
        """Return the sums of both passes' rows (a new state)."""
        return NewtonSums.from_vector(self.layout, self.to_vector() + other.to_vector())


class LineSearchSums:
    """Sums of the line-search pass: rows, weight, and per trial step t_j the (weighted) losses at theta + t_j d.

    Per step also the rows of positive weight with a non-positive margin. ``count`` and ``weight`` as in
    :class:`NewtonSums`. One flat vector (:meth:`to_vector`: ``[count, losses (J), nonpositive (J), weight]``) to
    all-reduce with SUM.
    """

    def __init__(self, layout: Layout, steps: Sequence[float] = DEFAULT_STEPS) -> None:
        self.layout = layout
        self.steps = np.asarray(steps, dtype=np.float64)
        if self.steps.ndim != 1 or not np.all(self.steps > 0):
            raise InputError(f"line-search steps must be a list of positive numbers, got {steps!r}")
        self.count = self.weight = 0.0
        self.losses = np.zeros(len(self.steps))
        self.nonpositive = np.zeros(len(self.steps))

    def add(
        self,
        features: ArrayLike,
        labels: ArrayLike,
        theta: np.ndarray,
        direction: np.ndarray,
        mean: ArrayLike | None = None,
        scale: ArrayLike | None = None,
        weights: ArrayLike | None = None,
    ) -> None:
        """Add a chunk (as :meth:`NewtonSums.add`, row weights included) at theta + t d for every step t; d (P,)."""
        layout = self.layout
        design, y, w = _prepare(layout, features, labels, mean, scale, weights)
        both = np.stack([np.asarray(theta, np.float64), np.asarray(direction, np.float64)])
        products = design @ both.reshape(2 * layout.num_outputs, layout.width).T  # [z0, dz], (n, 2K)
        start, change = products[:, : layout.num_outputs], products[:, layout.num_outputs :]
        self.count += len(y)
        self.weight += float(len(y)) if w is None else float(w.sum())
        if layout.num_outputs == 1:  # the margins s = (2y - 1) z are affine in t too: s0 + t ds
            sign = np.where(y == 1, 1.0, -1.0)
            start, change = sign * start[:, 0], sign * change[:, 0]
        for j, step in enumerate(self.steps.tolist()):
            if layout.num_outputs == 1:
                signed = start + step * change
                losses, nonpositive = _softplus(-signed), signed <= 0
            else:
                losses, nonpositive, _ = _losses(start + step * change, y)
            self.losses[j] += float(_weigh(losses, w).sum())
            self.nonpositive[j] += float(nonpositive.sum())

    def to_vector(self) -> np.ndarray:
        """Return the state as one float64 vector of length 2 + 2J."""
        return np.concatenate([[self.count], self.losses, self.nonpositive, [self.weight]])

    @classmethod
    def from_vector(cls, layout: Layout, steps: Sequence[float], vector: np.ndarray) -> LineSearchSums:
        """Inverse of :meth:`to_vector` (of a sum of them: the merged state)."""
        sums, vector = cls(layout, steps), np.asarray(vector, dtype=np.float64)
        size = len(sums.steps)
        if vector.shape != (2 + 2 * size,):
            raise ValueError(f"a LineSearchSums vector of {size} steps has {2 + 2 * size} entries")
        sums.count, sums.weight = float(vector[0]), float(vector[-1])
        sums.losses, sums.nonpositive = vector[1 : 1 + size].copy(), vector[1 + size : 1 + 2 * size].copy()
        return sums
