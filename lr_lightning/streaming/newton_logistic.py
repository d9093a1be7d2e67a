r"""Exact Newton's method for L2-penalized logistic regression, streaming over row chunks, mergeable across processes.

Pure maths (NumPy, torch float64 on the CPU for the factorizations), no Lightning; the passes' sums are in
:mod:`lr_lightning.streaming.logistic_sums` (re-exported here). The model is that of
:class:`lr_lightning.models.logistic.LogisticRegression`: K = 1 logit for 2 classes, K = C logits for C >= 3, on
standardized features :math:`\tilde x = (x - \mu) / \sigma` (:class:`~lr_lightning.models.affine.AffineModel`),
:math:`z = W \tilde x + b` with W (K, D) and b (K,). The parameters are one flat vector
:math:`\theta` = ``A.reshape(-1)`` with :math:`A = [W, b]` (K, D + 1), or A = W (K, D) without bias
(:class:`Layout`); :math:`a = [\tilde x, 1]` is a row of the matching design, so :math:`z = A a`.

**Objective** (:mod:`lr_lightning.penalties`): :math:`f(\theta) = \frac{1}{\sum_i w_i} \sum_i w_i \ell_i +
\lambda_2 \lVert W \rVert_F^2`, bias not penalized, with row weights :math:`w_i \ge 0` (sample weights, times class
weights; all 1 without weights, the mean :math:`\frac{1}{N} \sum_i \ell_i`). scikit-learn's
``LogisticRegression(C=1 / (2 N_w l2_strength)).fit(X, y, sample_weight=w)`` on standardized features, with
:math:`N_w = \sum_i w_i` (N without weights), has the same minimizer: its objective :math:`C \sum_i w_i \ell_i +
\frac{1}{2} \lVert W \rVert_F^2` is ours times :math:`C N_w`. A zero-weight row counts for nothing, as if dropped;
integer weights count as repeated rows. Per row, with :math:`p = \sigma(z)` (binary) or :math:`\mathrm{softmax}(z)`,
and :math:`e_y` the one-hot label (binary: :math:`y \in \{0, 1\}`, :math:`s = (2y - 1) z`):

* loss :math:`\ell = \log(1 + e^{-s})` (binary), :math:`\ell = \log \sum_c e^{z_c - z_y}` (softmax);
* gradient :math:`\nabla_A \ell = (p - e_y) a^\top` (binary: :math:`(p - y) a^\top`);
* Hessian :math:`\nabla^2_\theta \ell = S \otimes a a^\top` with :math:`S = p (1 - p)` (binary) or
  :math:`S = \mathrm{diag}(p) - p p^\top` (C, C);
* the penalty adds :math:`2 \lambda_2 W` to the gradient and :math:`2 \lambda_2` to the Hessian's diagonal on
  weight entries.

One pass at fixed :math:`\theta` (:class:`NewtonSums`) sums, in float64, the rows, their weights and the weighted
losses, gradients and Hessians: per chunk a product :math:`A_{\text{design}}^\top \mathrm{diag}(w_i S_{kl})
A_{\text{design}}` per class pair, no loop over rows. Its state is one flat vector (:meth:`NewtonSums.to_vector`), so
DDP ranks merge by an all-reduce SUM. :func:`newton_step` solves :math:`H d = -g` (Cholesky) and returns the Newton
decrement :math:`\lambda^2 = g^\top H^{-1} g`; :math:`\lambda^2 / 2` estimates the gap :math:`f(\theta) - f^*` (exactly
for a quadratic, and to leading order near the optimum, where the convergence is quadratic). A second pass
(:class:`LineSearchSums`) sums the losses at :math:`\theta + t_j d` for every trial step :math:`t_j` at once (logits
:math:`z_0 + t\,\Delta z`: two products per chunk), and :func:`choose_step` takes the largest step satisfying Armijo's
condition. :func:`newton_fit` repeats the two passes; the model runs the same steps, one per epoch.

**Not identifiable: multi-class.** Adding one vector to every class's row of A changes no probability, so along
each unpenalized column of A (the bias; every column when ``l2_strength = 0``) the Hessian is singular. The
direction taken is then the minimum-norm solution :math:`H^+ g`: :math:`g` is orthogonal to those null vectors
(:math:`\sum_c (p_c - e_{y,c}) = 0`), so solving :math:`(H + s V V^\top) d = g`, V the orthonormal null vectors
and s > 0, gives exactly :math:`H^+ g` with a Cholesky factorization. From a start with zero class sums the
iterates keep them (scikit-learn's "symmetric parametrization"). Other singular Hessians (unpenalized with
collinear or constant features) fall back to the eigendecomposition's pseudo-inverse (eigenvalues below
``P * eps * max`` dropped), which is also minimum-norm.

**Separable rows.** With ``l2_strength = 0`` no minimum exists when the rows are linearly separable. The proof:
parameters classifying every row with a strictly positive margin (:math:`s > 0`; multi-class
:math:`z_y > z_c` for every c != y) are a separating hyperplane, and scaling them up drives the loss to 0, never
reached. Both passes count the rows of positive weight with a non-positive margin (a zero-weight row is not in
the objective, so it cannot prevent separation); a count of 0 is the certificate
(:func:`check_separable` raises :class:`~lr_lightning.errors.InputError` with :data:`SEPARABLE_MESSAGE`). Newton
iterates on separable rows reach such parameters within a few iterations. Not caught: quasi-complete separation
(a hyperplane separating all rows but some lying on it), or a class absent from the rows: no minimum either, but
no iterate separates strictly. The weights then grow without bound (slowly, about logarithmically in the
iterations) while the objective converges to its infimum linearly, not quadratically: the caller stops at its
``max_iter``, or the decrement may even pass ``tol`` (on a toy set, after ~40 iterations) at weights that depend
on where it stopped. Its probabilities are then the infimum's, to the tolerance, but the weights mean nothing.

**Limits.** The Hessian has :math:`P^2` float64 entries, :math:`P = K (D + 1)`; sizes above
:data:`MAX_PARAMETERS` = 4096 (a 128 MB Hessian, and a 134 MB all-reduce) are refused. A pass costs
:math:`O(N D^2 K^2)` flops (a chunk of n rows holds an (n, D + 1) copy), a step :math:`O(P^3)`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from numpy.typing import ArrayLike

from lr_lightning.errors import InputError
from lr_lightning.streaming.logistic_sums import DEFAULT_STEPS, MAX_PARAMETERS, Layout, LineSearchSums, NewtonSums

__all__ = [
    "DEFAULT_STEPS",
    "MAX_PARAMETERS",
    "SEPARABLE_MESSAGE",
    "Chunk",
    "Layout",
    "LineSearchSums",
    "NewtonFit",
    "NewtonStep",
    "NewtonSums",
    "check_separable",
    "choose_step",
    "newton_fit",
    "newton_step",
]

#: The message of the error raised on linearly separable rows without penalty.
SEPARABLE_MESSAGE = (
    "the training rows are linearly separable (some weights classify every row correctly with a positive margin), "
    "so the unpenalized log-loss has no minimum: it decreases towards 0 as the weights grow without bound; "
    "set l2_strength > 0"
)
_EPS = float(np.finfo(np.float64).eps)
#: One chunk of training rows: (features (n, D), labels (n,)), or with row weights (n,) (None: all 1) third.
Chunk = tuple[ArrayLike, ArrayLike] | tuple[ArrayLike, ArrayLike, ArrayLike | None]


@dataclass
class NewtonStep:
    r"""Newton's step at theta: objective f, penalized gradient g (P,), direction d = -H⁺ g (P,), decrement g^T H⁺ g.

    ``decrement`` is :math:`\lambda^2`; :math:`\lambda^2 / 2` estimates :math:`f(\theta) - f^*`.
    """

    objective: float
    gradient: np.ndarray
    direction: np.ndarray
    decrement: float


def _null_vectors(layout: Layout, l2_strength: float) -> np.ndarray:
    """Orthonormal (P, m) null vectors of a multi-class Hessian: all classes' equal shift of unpenalized columns."""
    if layout.num_outputs == 1:
        return np.zeros((layout.size, 0))
    columns = range(layout.width) if l2_strength == 0 else range(layout.num_features, layout.width)
    vectors = np.zeros((layout.size, len(columns)))
    for j, column in enumerate(columns):
        vectors[column :: layout.width, j] = layout.num_outputs**-0.5
    return vectors


def newton_step(sums: NewtonSums, theta: np.ndarray, l2_strength: float) -> NewtonStep:
    r"""Solve Newton's system from merged sums at theta (P,) with the penalty :math:`\lambda_2 \lVert W \rVert^2`.

    With :math:`N_w = \sum_i w_i` (``sums.weight``), :math:`g = \frac{1}{N_w}\sum_i w_i \nabla \ell_i + 2 \lambda_2
    W`, :math:`H = \frac{1}{N_w}\sum_i w_i \nabla^2 \ell_i + 2 \lambda_2 I_W`; direction :math:`d = -H^{-1} g` by
    Cholesky, or the minimum-norm :math:`-H^+ g` where H is singular (module docstring); decrement
    :math:`\lambda^2 = -g^\top d \ge 0`.
    """
    layout, theta = sums.layout, np.asarray(theta, dtype=np.float64)
    if sums.count == 0:
        raise InputError("Newton's method needs at least one training row of positive weight")
    penalized = layout.penalized()
    penalized_theta = np.where(penalized, theta, 0.0)
    objective = sums.loss / sums.weight + l2_strength * float(penalized_theta @ penalized_theta)
    gradient = sums.gradient / sums.weight + 2.0 * l2_strength * penalized_theta
    hessian = sums.hessian / sums.weight + np.diag(2.0 * l2_strength * penalized)
    null = _null_vectors(layout, l2_strength)
    gradient -= null @ (null.T @ gradient)  # rounding only: g is orthogonal to the null vectors
    regularized = torch.from_numpy(hessian + float(np.mean(np.diag(hessian))) * (null @ null.T))
    factor, info = torch.linalg.cholesky_ex(regularized)
    pivots = torch.diagonal(factor) ** 2  # a tiny pivot: singular to rounding (collinear unpenalized features)
    if int(info) == 0 and float(pivots.min()) > layout.size * _EPS * float(regularized.diagonal().max()):
        solution = torch.cholesky_solve(torch.from_numpy(gradient)[:, None], factor)[:, 0].numpy()
    else:  # singular beyond the known null vectors: the eigendecomposition's pseudo-inverse
        values, vectors = np.linalg.eigh(hessian)
        keep = values > layout.size * _EPS * max(float(values[-1]), 0.0)
        solution = vectors[:, keep] @ ((vectors[:, keep].T @ gradient) / values[keep])
    solution -= null @ (null.T @ solution)
    return NewtonStep(objective, gradient, -solution, max(float(gradient @ solution), 0.0))


def choose_step(
    search: LineSearchSums, step: NewtonStep, theta: np.ndarray, l2_strength: float, armijo: float = 1e-4
) -> float:
    r"""Return the largest trial step t with Armijo's :math:`f(\theta + t d) \le f(\theta) - c t \lambda^2`, or 0.

    c = ``armijo``. Both sides carry rounding of a few ulps of f (the sums of two passes), so the test allows
    :math:`64 \varepsilon |f(\theta)|` more: near the optimum the decrease :math:`\lambda^2 / 2` is that small.
    0 means no step decreases f: a numerical failure, as the Newton direction is a descent direction.
    """
    penalized = search.layout.penalized()
    slack = 64 * _EPS * abs(step.objective)
    accepted = [0.0]
    for t, loss in zip(search.steps, search.losses, strict=True):
        penalized_theta = np.where(penalized, np.asarray(theta) + t * step.direction, 0.0)
        value = loss / search.weight + l2_strength * float(penalized_theta @ penalized_theta)
        if value <= step.objective - armijo * t * step.decrement + slack:
            accepted.append(float(t))
    return max(accepted)


def check_separable(nonpositive: float, count: float, l2_strength: float) -> None:
    """Raise :class:`InputError` (:data:`SEPARABLE_MESSAGE`) if, unpenalized, no row of ``count`` > 0 is misclassified.

    ``nonpositive`` counts the rows of positive weight with a margin <= 0 at some parameters, ``count`` the rows of
    positive weight: 0 of them proves the rows separable.
    """
    if l2_strength == 0 and count > 0 and nonpositive == 0:
        raise InputError(SEPARABLE_MESSAGE)


@dataclass
class NewtonFit:
    """Result of :func:`newton_fit`: weight (K, D), bias (K,) or None, per-iteration objectives and decrements."""

    weight: np.ndarray
    bias: np.ndarray | None
    objectives: list[float] = field(default_factory=list)
    decrements: list[float] = field(default_factory=list)
    step_sizes: list[float] = field(default_factory=list)
    converged: bool = False


def _with_weights(chunk: Chunk) -> tuple[ArrayLike, ArrayLike, ArrayLike | None]:
    """Return a chunk as (features, labels, weights), weights None when the chunk has none."""
    return (chunk[0], chunk[1], chunk[2]) if len(chunk) == 3 else (chunk[0], chunk[1], None)


def newton_fit(
    chunks: Callable[[], Iterable[Chunk]],
    num_features: int,
    num_classes: int = 2,
    *,
    mean: ArrayLike | None = None,
    scale: ArrayLike | None = None,
    l2_strength: float = 0.0,
    fit_intercept: bool = True,
    max_iter: int = 50,
    tol: float = 1e-15,
    steps: Sequence[float] = DEFAULT_STEPS,
    theta: np.ndarray | None = None,
) -> NewtonFit:
    r"""Minimize the objective by Newton's method with a line search, two passes over ``chunks()`` per iteration.

    Each iteration: a :class:`NewtonSums` pass, :func:`check_separable`, :func:`newton_step`; it stops when
    :math:`\lambda^2 / 2 \le` ``tol`` :math:`\cdot f` (relative gap estimate), taking the full step (quadratic
    convergence makes it exact to rounding). Otherwise a :class:`LineSearchSums` pass, :func:`choose_step` and the
    update; a step of 0 stops without convergence. ``chunks()`` yields (features (n, D), labels (n,)) or
    (features, labels, row weights (n,) or None) tuples (:data:`Chunk`); ``theta`` (P,) is the start, zeros by
    default. ``converged`` is False after ``max_iter`` iterations.
    """
    layout = Layout.for_classes(num_classes, num_features, fit_intercept)
    theta = np.zeros(layout.size) if theta is None else np.asarray(theta, dtype=np.float64).copy()
    result = NewtonFit(*layout.unpack(theta))
    for _ in range(max_iter):
        sums = NewtonSums(layout)
        for features, labels, weights in map(_with_weights, chunks()):
            sums.add(features, labels, theta, mean, scale, weights)
        check_separable(sums.nonpositive, sums.count, l2_strength)
        step = newton_step(sums, theta, l2_strength)
        result.objectives.append(step.objective)
        result.decrements.append(step.decrement)
        if step.decrement / 2 <= tol * step.objective:
            theta, result.converged = theta + step.direction, True
            result.step_sizes.append(1.0)
            break
        search = LineSearchSums(layout, steps)
        for features, labels, weights in map(_with_weights, chunks()):
            search.add(features, labels, theta, step.direction, mean, scale, weights)
        size = choose_step(search, step, theta, l2_strength)
        result.step_sizes.append(size)
        if size == 0:
            break
        check_separable(search.nonpositive[list(search.steps).index(size)], search.count, l2_strength)
        theta = theta + size * step.direction
    result.weight, result.bias = layout.unpack(theta)
    return result
