r"""The state of a streaming pass: a TSQR of the centred, augmented block, mergeable across processes.

For features :math:`X` (N, D), targets :math:`Y` (N, K) and row weights :math:`w` (N,), read a chunk at a time,
the state is the weight sum :math:`n = \sum_i w_i`, the weighted column means :math:`m = \sum_i w_i z_i / n` of
:math:`Z = [X, Y]` (N, P) with P = D + K, and an upper-triangular :math:`R` (P, P) with
:math:`R^\top R = (Z - 1 m^\top)^\top \operatorname{diag}(w) (Z - 1 m^\top)`: the R factor of the centred block
with its rows scaled by :math:`\sqrt{w_i}`. Without weights every :math:`w_i` is 1 and n is the row count.
A chunk is centred on its own mean, stacked under the current R and re-factored; two states merge the same way,
by stacking their R factors, so ranks (or threads, or files) merge in any order and any tree. Centring is merged
with the pairwise update of Chan, Golub and LeVeque: for blocks a and b with weight sums :math:`n_a, n_b` and
means :math:`m_a, m_b`,

.. math::

    S_{a \cup b} = S_a + S_b + \frac{n_a n_b}{n_a + n_b} (m_a - m_b)(m_a - m_b)^\top,
    \qquad m_{a \cup b} = m_a + \frac{n_b}{n_a + n_b} (m_b - m_a),

where :math:`S = \sum_i w_i (z_i - m)(z_i - m)^\top` is a block's centred scatter matrix. (Write
:math:`z_i - m_{a \cup b} = (z_i - m_a) + (m_a - m_{a \cup b})` for the rows of a, expand, use
:math:`\sum_{i \in a} w_i (z_i - m_a) = 0`, and add the same for b: the cross terms vanish and
:math:`n_a (m_a - m)(m_a - m)^\top + n_b (m_b - m)(m_b - m)^\top` is the rank-one term above.) As
:math:`S = R^\top R`, the scatter of the union is that of the stacked rows
:math:`[R_a; R_b; \sqrt{n_a n_b / (n_a + n_b)}\,(m_a - m_b)^\top]`, so its R factor is the R factor of those
P + P + 1 rows: one correction row carries the change of mean, and the data are never re-centred.

**Weights.** A row of weight :math:`w_i` is :math:`w_i` copies of the row (integer weights give exactly the
state of the repeated rows), and a row of weight 0 is as if absent: it counts in neither the weight sum nor
``n_rows``, the number of rows of positive weight, which is what the degrees of freedom of the inference count
(R's ``lm`` convention). The state also keeps :math:`\sum_i \log w_i` over those rows, which the Gaussian
log-likelihood of weighted least squares needs.

Why this method:

* **Stability.** Orthogonal transformations do not change the condition number, so solving from R is as
  accurate as a QR or SVD of the whole matrix (``numpy.linalg.lstsq``): the error grows like
  :math:`\varepsilon\,\kappa(X)` (plus :math:`\varepsilon\,\kappa(X)^2` times the relative residual, the
  problem's own sensitivity). The normal equations :math:`X^\top X w = X^\top y` square the condition number
  before anything is solved, so their error grows like :math:`\varepsilon\,\kappa^2` even when the residual
  is zero: on the NIST Longley design (:math:`\kappa \approx 5 \cdot 10^9` with the intercept column) they miss
  the certified values by about :math:`4 \cdot 10^{-8}` relative where the streaming QR is within
  :math:`10^{-13}` (``tests/test_streaming_least_squares.py`` checks this and a near-collinear design).
  Centring on the running mean, rather than forming a raw sum of squares, avoids the same cancellation for the
  intercept.
* **Memory O(P²), independent of N.** The state is P² + P + 3 numbers whatever the number of rows; a chunk of
  n rows costs :math:`O(n P^2)` flops, like a pass of the normal equations, with one chunk in memory at a time.
  (The state is dense: D = 10,000 features hold an 800 MB R.)
* **Mergeable.** :meth:`LeastSquaresState.merge` is associative (and commutative) up to rounding, so DDP ranks
  each stream their shard, all-gather :meth:`LeastSquaresState.to_vector` and merge; a checkpoint stores
  :meth:`LeastSquaresState.to_arrays`. R factors are kept with a non-negative diagonal, which makes R unique for a
  full-rank block, so the result does not depend on the merge tree beyond rounding.

**float32-stored data.** The arithmetic is float64 throughout (chunks are converted on the way in, a sub-block
at a time), so the answer is the exact least-squares answer *for the stored numbers*. Data stored in float32
have already been rounded to about 7 significant digits, which moves the solution by up to about
:math:`\kappa \cdot 6 \cdot 10^{-8}` relative: harmless for a well-conditioned standardized design, fatal for
Longley's raw columns. Certified accuracy needs the data stored in float64. (The QR kernel,
:mod:`~lr_lightning.streaming.r_factor`, is ``torch.linalg.qr`` on float64 CPU tensors sharing NumPy buffers, run
single-threaded; the state's interface is NumPy arrays.)
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import numpy.typing as npt

from lr_lightning.streaming.r_factor import stacked_r_factor

__all__ = ["LeastSquaresState", "RowChunk", "merge_all"]

#: A chunk of rows: ``(features, targets)``, or ``(features, targets, weights)`` with weights (n,) or None for ones.
RowChunk = tuple[npt.ArrayLike, npt.ArrayLike] | tuple[npt.ArrayLike, npt.ArrayLike, npt.ArrayLike | None]


def _as_2d(array: npt.ArrayLike, name: str) -> np.ndarray:
    """``array`` as float64, (n,) -> (n, 1); anything but 1-D or 2-D, or a non-finite value, is an error."""
    matrix = _as_matrix(array, name)
    if not np.all(np.isfinite(matrix)):
        raise ValueError(f"{name} must be finite: the chunk holds NaN or infinite values")
    return np.asarray(matrix, dtype=np.float64)


def _as_matrix(array: npt.ArrayLike, name: str) -> np.ndarray:
    """``array`` as a 2-D float array without a copy when it is float16/32/64 already, (n,) -> (n, 1)."""
    matrix = np.asarray(array)
    if not (np.issubdtype(matrix.dtype, np.floating) and matrix.dtype.itemsize <= 8):
        matrix = np.asarray(matrix, dtype=np.float64)
    if matrix.ndim == 1:
        matrix = matrix[:, None]
    if matrix.ndim != 2:
        raise ValueError(f"{name} must be 1-D or 2-D, got shape {matrix.shape}")
    return matrix


def _row_weights(weights: npt.ArrayLike, n_rows: int) -> np.ndarray:
    """``weights`` as float64 (n,), finite and >= 0; anything else is an error (the data layer refuses it first)."""
    vector = np.asarray(weights, dtype=np.float64).reshape(-1)
    if vector.shape != (n_rows,):
        raise ValueError(f"weights must hold one number per row, {n_rows}, got shape {np.shape(weights)}")
    if not np.all(np.isfinite(vector) & (vector >= 0)):
        raise ValueError("weights must be finite and >= 0")
    return vector


class LeastSquaresState:
    r"""What one pass over rows keeps: the weight sum, the column means and the R factor of the centred block.

    For the rows seen so far, :math:`Z = [X, Y]` of shape (n, P) with P = D + K, and their weights :math:`w`
    (all 1 for rows fed without weights):

    * ``n_rows``: the number of rows of positive weight (the degrees of freedom count these);
    * ``weight_sum``: :math:`\sum_i w_i`, the rows' total weight (``n_rows`` when unweighted), a float;
    * ``log_weight_sum``: :math:`\sum_{w_i > 0} \log w_i` (0 when unweighted);
    * ``mean``: :math:`m` of shape (P,), the weighted column means of Z (the features' means, then the targets');
    * ``r_factor``: :math:`R` of shape (P, P), upper triangular with a non-negative diagonal, with
      :math:`R^\top R = (Z - 1 m^\top)^\top \operatorname{diag}(w) (Z - 1 m^\top)`.

    A new state is empty (n = 0). :meth:`update` folds a chunk in place; :meth:`merge` returns the state of the
    union of two disjoint sets of rows and leaves both alone. Memory is P² + P + 3 float64 numbers whatever n.

    Args:
        n_features: D >= 0.
        n_targets: K >= 1.

    """

    def __init__(self, n_features: int, n_targets: int) -> None:
        if n_features < 0 or n_targets < 1:
            raise ValueError(f"need n_features >= 0 and n_targets >= 1, got {n_features} and {n_targets}")
        self.n_features = int(n_features)
        self.n_targets = int(n_targets)
        width = self.n_features + self.n_targets
        self.n_rows = 0
        self.weight_sum = 0.0
        self.log_weight_sum = 0.0
        self.mean = np.zeros(width)  # (P,)
        self.r_factor = np.zeros((width, width))  # (P, P)

    @property
    def width(self) -> int:
        """P = D + K, the columns of the augmented block [X, Y]."""
        return self.n_features + self.n_targets

    @property
    def weighted(self) -> bool:
        """Whether some row's weight is not 1: the weight sum is not the row count, or the log-weights do not sum to 0.

        (By Jensen's inequality, ``weight_sum == n_rows`` and ``log_weight_sum == 0`` only when every weight is 1.)
        """
        return self.weight_sum != self.n_rows or self.log_weight_sum != 0.0

    @classmethod
    def from_chunk(
        cls, features: npt.ArrayLike, targets: npt.ArrayLike, weights: npt.ArrayLike | None = None
    ) -> LeastSquaresState:
        """Build the state of one chunk: features (n, D), targets (n,) or (n, K), weights (n,) or None for ones."""
        x = _as_matrix(features, "features")
        y = _as_matrix(targets, "targets")
        state = cls(x.shape[1], y.shape[1])
        state.update(x, y, weights)
        return state

    @classmethod
    def from_chunks(cls, chunks: Iterable[RowChunk]) -> LeastSquaresState:
        """Build the state of a whole pass, e.g. ``LeastSquaresState.from_chunks(store.chunks("train"))``.

        Args:
            chunks: ``(features, targets)`` or ``(features, targets, weights)`` tuples, weights None for ones.

        Raises:
            ValueError: when ``chunks`` is empty (D and K are then unknown: build ``LeastSquaresState(D, K)``).

        """
        state: LeastSquaresState | None = None
        for chunk in chunks:
            if len(chunk) not in (2, 3):
                raise ValueError(f"a chunk is (features, targets) or (features, targets, weights), got {len(chunk)}")
            features, targets = chunk[0], chunk[1]
            weights = chunk[2] if len(chunk) == 3 else None
            if state is None:
                state = cls.from_chunk(features, targets, weights)
            else:
                state.update(features, targets, weights)
        if state is None:
            raise ValueError("no chunks: build an empty LeastSquaresState(n_features, n_targets) instead")
        return state

    def update(self, features: npt.ArrayLike, targets: npt.ArrayLike, weights: npt.ArrayLike | None = None) -> None:
        r"""Fold a chunk into this state, in place.

        The chunk is centred on its own (weighted) mean :math:`m_b` (it is in memory, so this is the accurate
        two-pass centring), then merged with the pairwise update: R becomes the R factor of
        :math:`[R; \sqrt{n n_b / (n + n_b)}\,(m - m_b)^\top; \operatorname{diag}(\sqrt{w_b}) (Z_b - 1 m_b^\top)]`,
        n and :math:`n_b` the weight sums.

        Args:
            features: X of shape (n_b, D), any float dtype (computed in float64; float32 is not copied whole).
            targets: Y of shape (n_b,) or (n_b, K).
            weights: :math:`w_b` of shape (n_b,), finite and >= 0; None when every row weighs 1. Weighted rows
                are scaled into a float64 copy of the chunk's rows of positive weight.

        """
        x = _as_matrix(features, "features")
        y = _as_matrix(targets, "targets")
        if x.shape[0] != y.shape[0]:
            raise ValueError(f"features have {x.shape[0]} rows but targets have {y.shape[0]}")
        if x.shape[1] != self.n_features or y.shape[1] != self.n_targets:
            raise ValueError(
                f"the state has {self.n_features} features and {self.n_targets} targets, "
                f"the chunk {x.shape[1]} and {y.shape[1]}"
            )
        if weights is not None:
            self._update_weighted(x, y, _row_weights(weights, x.shape[0]))
            return
        n_chunk = x.shape[0]
        if n_chunk == 0:
            return
        # Float64 sums (the dtype argument): float32 data are not rounded again. A NaN or infinity anywhere
        # makes its column's mean non-finite, so this is also the finiteness check, at no extra pass.
        with np.errstate(over="ignore", invalid="ignore"):  # refused just below, with a message
            chunk_mean = np.concatenate([x.mean(axis=0, dtype=np.float64), y.mean(axis=0, dtype=np.float64)])  # (P,)
        _check_mean(chunk_mean, x, y)
        self._absorb(n_chunk, float(n_chunk), 0.0, chunk_mean, [x, y], chunk_mean)

    def _update_weighted(self, x: np.ndarray, y: np.ndarray, weights: np.ndarray) -> None:
        """:meth:`update` for rows (n, D) and (n, K) with weights (n,), checked: rows of weight 0 are left out."""
        positive = weights > 0
        if not np.all(positive):
            x, y, weights = x[positive], y[positive], weights[positive]
        if x.shape[0] == 0:
            return
        chunk_weight = float(np.sum(weights))
        column = weights[:, None]  # (n, 1)
        with np.errstate(over="ignore", invalid="ignore"):  # refused just below, with a message
            chunk_mean = np.concatenate(
                [np.sum(x * column, axis=0) / chunk_weight, np.sum(y * column, axis=0) / chunk_weight]
            )  # (P,)
        _check_mean(chunk_mean, x, y)
        root = np.sqrt(column)
        scaled = [(x - chunk_mean[: self.n_features]) * root, (y - chunk_mean[self.n_features :]) * root]
        self._absorb(x.shape[0], chunk_weight, float(np.sum(np.log(weights))), chunk_mean, scaled, None)

    def _absorb(
        self,
        n_other: int,
        weight_other: float,
        log_weight_other: float,
        other_mean: np.ndarray,
        groups: Sequence[np.ndarray],
        shift: np.ndarray | None,
    ) -> None:
        """Merge in place ``n_other`` rows of total weight ``weight_other`` and mean (P,), as rows with their scatter.

        ``groups`` are rows (m, P) side by side, whose scatter is the block's once ``shift`` (P,) is subtracted.
        """
        weight_total = self.weight_sum + weight_other
        correction = math.sqrt(self.weight_sum * weight_other / weight_total) * (self.mean - other_mean)  # (P,)
        self.r_factor = stacked_r_factor(self.r_factor, correction, groups, shift)
        self.mean = self.mean + (weight_other / weight_total) * (other_mean - self.mean)
        self.n_rows += n_other
        self.weight_sum = weight_total
        self.log_weight_sum += log_weight_other

    def merge(self, other: LeastSquaresState) -> LeastSquaresState:
        """Return the state of this state's rows and ``other``'s (disjoint sets of rows); both are left unchanged.

        Associative and commutative up to rounding, so any reduction tree over ranks gives the same answer.
        """
        if (other.n_features, other.n_targets) != (self.n_features, self.n_targets):
            raise ValueError(
                f"cannot merge a state of {self.n_features} features and {self.n_targets} targets with one of "
                f"{other.n_features} and {other.n_targets}"
            )
        merged = self.copy()
        if other.n_rows:
            merged._absorb(other.n_rows, other.weight_sum, other.log_weight_sum, other.mean, [other.r_factor], None)
        return merged

    def copy(self) -> LeastSquaresState:
        """Return an independent copy."""
        clone = LeastSquaresState(self.n_features, self.n_targets)
        clone.n_rows = self.n_rows
        clone.weight_sum = self.weight_sum
        clone.log_weight_sum = self.log_weight_sum
        clone.mean = self.mean.copy()
        clone.r_factor = self.r_factor.copy()
        return clone

    def raw_r_factor(self) -> np.ndarray:
        r"""Return the R factor (P, P) of the *uncentred* block Z: that of :math:`[R; \sqrt{n}\, m^\top]`.

        The raw scatter :math:`Z^\top \operatorname{diag}(w) Z` is the centred one plus :math:`n m m^\top` (n the
        weight sum: the pairwise update with an empty block of mean 0), so fits without an intercept come from the
        same state. One QR of P + 1 rows.
        """
        return stacked_r_factor(self.r_factor, math.sqrt(self.weight_sum) * self.mean)

    def feature_std(self) -> np.ndarray:
        r"""Return the population standard deviation of each feature, (D,): :math:`\lVert R_{:, j} \rVert / \sqrt{n}`.

        The diagonal of :math:`R^\top R` is the centred (weighted) sum of squares, so this is exact and free; n is
        the weight sum. It is the scale ``StandardScaler`` (with the same ``sample_weight``) and
        :mod:`lr_lightning.data.scaling` use. A constant column has scale 0: replace it by 1 before passing the
        scales as ``feature_scale``, as :mod:`lr_lightning.data.scaling` does.
        """
        if self.n_rows == 0:
            raise ValueError("the state holds no rows")
        columns = self.r_factor[:, : self.n_features]  # (P, D)
        return np.sqrt(np.sum(columns**2, axis=0) / self.weight_sum)

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Return plain arrays for checkpoints.

        Returns:
            ``n_rows`` (), ``n_features`` () (int64), ``weight_sum`` (), ``log_weight_sum`` (), ``mean`` (P,) and
            ``r_factor`` (P, P) (float64).

        """
        return {
            "n_rows": np.asarray(self.n_rows, dtype=np.int64),
            "n_features": np.asarray(self.n_features, dtype=np.int64),
            "weight_sum": np.asarray(self.weight_sum, dtype=np.float64),
            "log_weight_sum": np.asarray(self.log_weight_sum, dtype=np.float64),
            "mean": self.mean.copy(),
            "r_factor": self.r_factor.copy(),
        }

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, npt.ArrayLike]) -> LeastSquaresState:
        """Rebuild the state :meth:`to_arrays` wrote (NumPy arrays, CPU tensors: anything ``numpy.asarray`` reads).

        Arrays without ``weight_sum`` and ``log_weight_sum`` (written before weights) are an unweighted state.
        """
        n_rows = int(np.asarray(arrays["n_rows"]))
        n_features = int(np.asarray(arrays["n_features"]))
        weight_sum = float(np.asarray(arrays["weight_sum"])) if "weight_sum" in arrays else float(n_rows)
        log_weight_sum = float(np.asarray(arrays["log_weight_sum"])) if "log_weight_sum" in arrays else 0.0
        mean = np.asarray(arrays["mean"], dtype=np.float64)
        r_factor = np.asarray(arrays["r_factor"], dtype=np.float64)
        width = mean.shape[0] if mean.ndim == 1 else -1
        weights_valid = math.isfinite(weight_sum) and math.isfinite(log_weight_sum) and weight_sum >= 0
        if (
            width <= n_features
            or r_factor.shape != (width, width)
            or n_rows < 0
            or not weights_valid
            or (weight_sum > 0) != (n_rows > 0)
        ):
            raise ValueError(
                f"not a LeastSquaresState: n_rows {n_rows}, weight_sum {weight_sum}, n_features {n_features}, "
                f"mean of shape {mean.shape}, r_factor of shape {r_factor.shape}"
            )
        state = cls(n_features, width - n_features)
        state.n_rows = n_rows
        state.weight_sum = weight_sum
        state.log_weight_sum = log_weight_sum
        state.mean = mean.copy()
        state.r_factor = np.triu(r_factor)
        return state

    def to_vector(self) -> np.ndarray:
        """Return the state as one float64 vector for all-gather, 3 + P + P² numbers (:meth:`from_vector`).

        ``[n_rows, weight_sum, log_weight_sum, mean, r_factor.ravel()]``: gather every rank's and merge the states.
        """
        head = [float(self.n_rows), self.weight_sum, self.log_weight_sum]
        return np.concatenate([head, self.mean, self.r_factor.ravel()])

    @classmethod
    def from_vector(cls, vector: npt.ArrayLike, n_features: int, n_targets: int) -> LeastSquaresState:
        """Rebuild a state of D = ``n_features`` and K = ``n_targets`` from :meth:`to_vector`'s vector."""
        values = np.asarray(vector, dtype=np.float64).reshape(-1)
        width = n_features + n_targets
        if values.shape != (3 + width + width * width,):
            raise ValueError(f"expected {3 + width + width * width} numbers for P = {width}, got {values.shape}")
        return cls.from_arrays(
            {
                "n_rows": round(values[0]),
                "n_features": n_features,
                "weight_sum": values[1],
                "log_weight_sum": values[2],
                "mean": values[3 : 3 + width],
                "r_factor": values[3 + width :].reshape(width, width),
            }
        )

    def __repr__(self) -> str:
        weights = f", weight_sum={self.weight_sum:g}" if self.weighted else ""
        return (
            f"LeastSquaresState(n_rows={self.n_rows}{weights}, n_features={self.n_features}, "
            f"n_targets={self.n_targets})"
        )


def _check_mean(chunk_mean: np.ndarray, x: np.ndarray, y: np.ndarray) -> None:
    """Refuse a chunk whose column means (P,) are not finite: a NaN or infinity in it, or sums that overflow."""
    if not np.all(np.isfinite(chunk_mean)):
        _as_2d(x, "features")
        _as_2d(y, "targets")
        raise ValueError("the chunk's column sums overflow float64: rescale the data")


def merge_all(states: Sequence[LeastSquaresState]) -> LeastSquaresState:
    """Merge states pairwise in a balanced tree (e.g. the all-gathered states of every rank, in rank order)."""
    if not states:
        raise ValueError("no states to merge")
    level = list(states)
    while len(level) > 1:
        level = [level[i].merge(level[i + 1]) if i + 1 < len(level) else level[i] for i in range(0, len(level), 2)]
    return level[0].copy()
