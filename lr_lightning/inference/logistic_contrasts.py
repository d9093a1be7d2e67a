r"""Linear algebra of logistic inference: contrasts, aliased terms, covariance, and the map to original units.

Pure NumPy/SciPy, used by :mod:`lr_lightning.inference.logistic` (whose docstring states the model). Notation:
D features, K = D + 1 terms, M contrasts (1 binary, C - 1 multi-class). Per logit the streaming layout
(:class:`~lr_lightning.streaming.logistic_sums.Layout`) orders a row of parameters ``[w_1 .. w_D, b]`` on
standardized features :math:`\tilde x_j = (x_j - \mu_j) / \sigma_j`; statsmodels orders ``[const, beta_1 ..
beta_D]`` on raw features. Arrays "std" are in the first order and units, "orig" in the second.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike
from scipy import linalg

from lr_lightning.streaming.logistic_sums import Layout

__all__ = [
    "ALIAS_TOLERANCE",
    "contrasts",
    "covariance",
    "fold_aliased",
    "kept_terms",
    "original_units_map",
    "to_original",
]

#: A term is aliased when :math:`1 - R^2` of its (Fisher-weighted) column on the terms kept before it is at most this.
ALIAS_TOLERANCE = 1e-11


def original_units_map(num_features: int, mean: ArrayLike | None = None, scale: ArrayLike | None = None) -> np.ndarray:
    r"""Return J (K, K) with :math:`\theta_{\text{orig}} = J \theta_{\text{std}}` for one logit.

    :math:`z = \sum_j w_j (x_j - \mu_j) / \sigma_j + b = (b - \sum_j w_j \mu_j / \sigma_j) + \sum_j (w_j /
    \sigma_j) x_j`, so const = :math:`b - \sum_j (\mu_j / \sigma_j) w_j` (row 0: :math:`-\mu / \sigma`, then 1 in
    the bias column D) and :math:`\beta_j = w_j / \sigma_j` (row 1 + j: :math:`1 / \sigma_j` in column j).
    ``mean`` None is 0, ``scale`` None is 1 (D,).
    """
    mu = np.zeros(num_features) if mean is None else np.asarray(mean, np.float64).reshape(num_features)
    sigma = np.ones(num_features) if scale is None else np.asarray(scale, np.float64).reshape(num_features)
    jacobian = np.zeros((num_features + 1, num_features + 1))
    jacobian[0, :num_features], jacobian[0, num_features] = -mu / sigma, 1.0
    jacobian[1:, :num_features] = np.diag(1.0 / sigma)
    return jacobian


def contrasts(layout: Layout, theta: ArrayLike, hessian: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    r"""Return the contrasts' parameters (M, K) and Fisher information (M K, M K), std, contrast-major.

    Binary: the one logit and the summed Hessian. Multi-class (A = [W, b] of shape (C, K)):
    :math:`\delta_c = A_c - A_0` for c = 1 .. C-1. The log-likelihood depends on A only through these, and at
    :math:`A_0 = 0` the full parameters are :math:`T \delta` with T dropping block 0; so the information of
    :math:`\delta` is :math:`T^\top H T`, the Hessian without its first block row and column: a principal
    submatrix of sums already made (no second pass, no subtraction), positive definite unless terms are aliased.
    The Hessian at A equals that at the shifted :math:`A - 1 A_0^\top` (same probabilities).
    """
    width = layout.width
    matrix = np.asarray(theta, np.float64).reshape(layout.num_outputs, width)
    if layout.num_outputs == 1:
        return matrix.copy(), np.array(hessian, dtype=np.float64)
    return matrix[1:] - matrix[0], np.array(hessian[width:, width:], dtype=np.float64)


def kept_terms(block: np.ndarray, tol: float = ALIAS_TOLERANCE) -> np.ndarray:
    r"""Return the mask (K,) of non-aliased terms, std order, from one contrast's information block (K, K).

    The block :math:`\sum_i v_i a_i a_i^\top` has positive weights :math:`v_i = w_i p_{ic} (1 - p_{ic})` (the sums keep
    only rows of positive weight :math:`w_i`), so its null space is that of those rows' design. Terms are examined in
    statsmodels' order (const first, then features in order, as R's ``glm``): a term is aliased when its column is in
    the span of those kept before it, i.e. its residual :math:`1 - R^2` (a Cholesky pivot of the correlation-scaled
    block) is at most ``tol``; a zero column is aliased.
    """
    size = len(block)
    diagonal = np.diag(block).astype(np.float64)
    root = np.sqrt(np.where(diagonal > 0, diagonal, 1.0))
    correlation = block / np.outer(root, root)
    factor = np.zeros((size, size))
    chosen: list[int] = []
    for term in [size - 1, *range(size - 1)]:
        if diagonal[term] <= 0:
            continue
        count = len(chosen)
        row = linalg.solve_triangular(factor[:count, :count], correlation[chosen, term], lower=True)
        residual = 1.0 - float(row @ row)
        if residual > tol:
            factor[count, :count], factor[count, count] = row, np.sqrt(residual)
            chosen.append(term)
    kept = np.zeros(size, dtype=bool)
    kept[chosen] = True
    return kept


def fold_aliased(params: np.ndarray, block: np.ndarray, kept: np.ndarray) -> np.ndarray:
    r"""Move aliased terms' weights onto the kept ones: params (M, K) -> (M, K) with zeros on aliased terms.

    An aliased column is :math:`a_A = a_S C` with :math:`C = G_{SS}^{-1} G_{SA}` (G the block), so
    :math:`a_S w_S + a_A w_A = a_S (w_S + C w_A)`: the same logits with :math:`w_A = 0`, i.e. the fit without the
    aliased columns (R's convention), whatever representative the solver returned (Newton's is minimum-norm).
    """
    folded = np.array(params, dtype=np.float64)
    aliased = ~kept
    if aliased.any():
        mixing = linalg.solve(block[np.ix_(kept, kept)], block[np.ix_(kept, aliased)], assume_a="sym")
        folded[:, kept] += folded[:, aliased] @ mixing.T
        folded[:, aliased] = 0.0
    return folded


def covariance(information: np.ndarray, kept: np.ndarray) -> np.ndarray:
    r"""Return :math:`I^{-1}` (M K, M K) on the kept terms of every contrast, zero rows and columns elsewhere.

    Cholesky of the Jacobi-scaled information :math:`D^{-1/2} I D^{-1/2}` (unit diagonal, so the scaling costs no
    accuracy), then :math:`I^{-1} = D^{-1/2} (D^{-1/2} I D^{-1/2})^{-1} D^{-1/2}`; the eigendecomposition's
    pseudo-inverse if rounding leaves it indefinite.
    """
    mask = np.tile(kept, len(information) // len(kept))
    sub = information[np.ix_(mask, mask)]
    root = np.sqrt(np.diag(sub))
    scaled = sub / np.outer(root, root)
    try:
        inverse = linalg.cho_solve(linalg.cho_factor(scaled, lower=True), np.eye(len(sub)))
    except linalg.LinAlgError:
        inverse = np.linalg.pinv(scaled, hermitian=True)
    result = np.zeros_like(information)
    result[np.ix_(mask, mask)] = (inverse + inverse.T) / 2 / np.outer(root, root)
    return result


def to_original(
    params: np.ndarray, cov: np.ndarray, jacobian: np.ndarray, kept: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    r"""Map std params (M, K) and covariance (M K, M K) to orig units and order; NaN on aliased terms.

    Per contrast :math:`\theta_{\text{orig}} = J \theta_{\text{std}}`, so :math:`\mathrm{cov}_{\text{orig}} =
    (I_M \otimes J)\, \mathrm{cov}_{\text{std}}\, (I_M \otimes J)^\top` (exact: the map is linear).
    """
    count = len(params)
    mapped = params @ jacobian.T
    blocks = np.kron(np.eye(count), jacobian)
    mapped_cov = blocks @ cov @ blocks.T
    aliased = ~np.concatenate([kept[-1:], kept[:-1]])  # the bias (std index D) is orig index 0
    mapped[:, aliased] = np.nan
    flat = np.tile(aliased, count)
    mapped_cov[flat, :] = np.nan
    mapped_cov[:, flat] = np.nan
    return mapped, (mapped_cov + mapped_cov.T) / 2
