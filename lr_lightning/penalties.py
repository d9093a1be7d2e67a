r"""Weight penalties (L1, L2, elastic net) and weight initialisation: pure maths, no Lightning.

One formula for every linear model. For a layer with weights :math:`W` of shape (K, D) — K outputs, D
standardized features — and a mean-reduced data loss :math:`L_{\text{data}}` (the MSE over rows and targets, or
the log-loss over rows), the training objective is

.. math::

    L = L_{\text{data}}
        + \frac{\lambda_2}{K} \lVert W \rVert_F^2
        + \frac{\lambda_1}{K} \lVert W \rVert_1,
    \qquad \lVert W \rVert_F^2 = \sum_{k,d} W_{kd}^2, \quad \lVert W \rVert_1 = \sum_{k,d} \lvert W_{kd} \rvert,

with :math:`\lambda_1` = ``l1_strength`` and :math:`\lambda_2` = ``l2_strength``; both set is the elastic net.

* The bias is never penalized.
* "Mean-reduced like the loss": the data loss is a mean over rows, so the penalty is added once per step, not
  once per row. The MSE is a mean over the K targets too, so the penalty is divided by K and each target k solves
  its own problem :math:`\frac{1}{N}\lVert y_k - X w_k - b_k \rVert^2 + \lambda_2 \lVert w_k \rVert^2 + \lambda_1
  \lVert w_k \rVert_1`. The log-loss of a row sums over its classes, so for logistic regression K = 1: the
  penalty is not divided by the number of logits. The strengths therefore depend neither on the number of rows
  nor on the batch size, the number of targets or the number of classes.
* No factor 1/2 on the L2 term.
* :math:`W` is the weight on *standardized* features (the space the model trains in), as scikit-learn's penalized
  models are usually fitted after a ``StandardScaler``. The coefficients in original units, ``coef_``, are
  :math:`W / \sigma`.

**scikit-learn equivalents.** This is the one statement of the mapping (the models' docstrings point here;
``tests/test_optimum.py`` checks every line against scikit-learn). On N training rows, with scikit-learn fitted on
the standardized features, our minimizer is that of:

* L2, MSE: ``Ridge(alpha=N * l2_strength)`` (:func:`sklearn_ridge_alpha`), whose objective
  :math:`\lVert y - Xw \rVert^2 + \alpha \lVert w \rVert^2` is ours times N.
* L1, MSE: ``Lasso(alpha=l1_strength / 2)`` (:func:`sklearn_lasso_alpha`), whose objective
  :math:`\frac{1}{2N}\lVert y - Xw \rVert^2 + \alpha \lVert w \rVert_1` is ours divided by 2.
* Elastic net, MSE: ``ElasticNet(alpha=l1_strength / 2 + l2_strength, l1_ratio=(l1_strength / 2) / alpha)``
  (:func:`sklearn_elastic_net_params`), whose objective :math:`\frac{1}{2N}\lVert y - Xw \rVert^2 + \alpha\rho
  \lVert w \rVert_1 + \frac{\alpha(1-\rho)}{2} \lVert w \rVert^2` is ours divided by 2.
* L2, log-loss (two classes or more): ``LogisticRegression(C=1 / (2 * N * l2_strength))``
  (:func:`sklearn_logistic_c`), whose objective :math:`C \sum_i \ell_i + \frac{1}{2}\lVert W \rVert_F^2` is ours
  times :math:`C N = 1 / (2 \lambda_2)`.

**With sample weights** :math:`w_i` the data loss is the weighted mean :math:`\sum_i w_i \ell_i / \sum_i w_i`, and
every line above holds with scikit-learn given ``sample_weight=w`` and N read as the weight sum
:math:`\sum_i w_i` (the row count without weights): ``Ridge(alpha=sum(w) * l2_strength)``,
``LogisticRegression(C=1 / (2 * sum(w) * l2_strength))``; ``Lasso`` and ``ElasticNet`` rescale their
``sample_weight`` to sum to the row count, which makes their data term :math:`\frac{1}{2 \sum_i w_i} \sum_i w_i
r_i^2` and leaves their alphas as they are. Pass the weight sum as ``num_rows``.

With ``standardize_targets`` the data loss, and so the mapping, is on standardized targets. The L1 term is not
differentiable at 0: gradient steps on it only make weights hover around zero. :func:`soft_threshold` is its
proximal operator, which the models apply after each plain-SGD step (proximal gradient descent, ISTA), so
weights reach exact zeros.
"""

from __future__ import annotations

import math
from numbers import Real

import torch
from torch import Tensor

from lr_lightning.errors import require

__all__ = [
    "INITS",
    "initialize_linear",
    "sklearn_elastic_net_params",
    "sklearn_lasso_alpha",
    "sklearn_logistic_c",
    "sklearn_ridge_alpha",
    "soft_threshold",
    "validate_strength",
    "weight_penalty",
]

#: Weight initialisations: PyTorch's default (Kaiming-uniform weights, uniform bias), all zeros, or normal.
INITS = ("default", "zeros", "normal")


def validate_strength(name: str, value: float) -> float:
    """Return ``value`` as a float if it is a finite number >= 0; raise an ``InputError`` naming ``name`` if not."""
    number = isinstance(value, Real) and not isinstance(value, bool)
    require(number and math.isfinite(value) and value >= 0, name, ">= 0 and finite", value)
    return float(value)


def weight_penalty(
    weight: Tensor, l1_strength: float = 0.0, l2_strength: float = 0.0, num_averaged: int | None = None
) -> Tensor:
    r"""Compute the penalty :math:`\frac{\lambda_2}{K}\lVert W \rVert_F^2 + \frac{\lambda_1}{K}\lVert W \rVert_1`.

    Args:
        weight: W of shape (K, D), the layer's weights on standardized features (never the bias).
        l1_strength: :math:`\lambda_1 \ge 0`.
        l2_strength: :math:`\lambda_2 \ge 0`.
        num_averaged: the K the data loss averages over: the number of targets for the MSE (the default, the
            rows of W), 1 for the log-loss, which sums over the classes of a row. Dividing by it keeps the
            scikit-learn mappings independent of the number of targets and classes.

    Returns:
        A scalar tensor with ``weight``'s dtype and device; exactly zero (and free) when both strengths are 0.

    """
    penalty = weight.new_zeros(())
    num_outputs = weight.shape[0] if num_averaged is None else num_averaged
    if l2_strength:
        penalty = penalty + l2_strength * weight.square().sum() / num_outputs
    if l1_strength:
        penalty = penalty + l1_strength * weight.abs().sum() / num_outputs
    return penalty


def soft_threshold(weight: Tensor, threshold: float) -> Tensor:
    r"""Proximal operator of :math:`t \lVert W \rVert_1`: :math:`\operatorname{sign}(W) \max(\lvert W \rvert - t, 0)`.

    After a gradient step of size :math:`\eta` on the smooth part of the objective, applying this with
    :math:`t = \eta \lambda_1 / K` is one step of proximal gradient descent (ISTA) on the L1-penalized objective.

    Args:
        weight: W of any shape.
        threshold: t >= 0.

    Returns:
        A new tensor of ``weight``'s shape with entries shrunk towards zero by t, and set to exactly zero within t.

    """
    return torch.sign(weight) * torch.clamp(weight.abs() - threshold, min=0.0)


def initialize_linear(linear: torch.nn.Linear, init: str = "default", std: float = 0.01) -> None:
    r"""Initialise an affine layer in place.

    * ``"default"``: leave PyTorch's initialisation (weights and bias uniform in
      :math:`\pm 1/\sqrt{D}`).
    * ``"zeros"``: weights and bias zero.
    * ``"normal"``: weights drawn from :math:`\mathcal{N}(0, \text{std}^2)`, bias zero.

    A linear model's objective is convex, so every initialisation reaches the same optimum; zeros is a fine start
    for it. Zero-initialised outputs do *not* stay tied to each other: the gradient of output k's row of W
    depends only on target k, so outputs stay identical only when their targets are identical (the course
    notebook saw three identical rows because it broadcast one target column against three outputs). The
    symmetry that zero initialisation cannot break is between hidden units of a multi-layer network, which these
    models do not have.

    Args:
        linear: the layer, weight (K, D) and optional bias (K,).
        init: one of :data:`INITS`.
        std: standard deviation for ``"normal"``, > 0.

    Raises:
        InputError: unknown ``init``, or ``std`` not a finite number > 0.

    """
    require(init in INITS, "init", f"one of {INITS}", init)
    number = isinstance(std, Real) and not isinstance(std, bool)
    require(number and math.isfinite(std) and std > 0, "init_std", "> 0 and finite", std)
    if init == "default":
        return
    with torch.no_grad():
        if init == "zeros":
            linear.weight.zero_()
        else:
            linear.weight.normal_(0.0, std)
        if linear.bias is not None:
            linear.bias.zero_()


def sklearn_ridge_alpha(l2_strength: float, num_rows: float) -> float:
    r"""scikit-learn ``Ridge(alpha)`` equal to our L2 penalty on N rows: ``alpha = N * l2_strength``.

    Ours is :math:`\frac{1}{N}\lVert y - Xw \rVert^2 + \lambda_2 \lVert w \rVert^2`; multiplied by N it is
    Ridge's :math:`\lVert y - Xw \rVert^2 + N\lambda_2 \lVert w \rVert^2`, with the same minimizer. With sample
    weights N is their sum (``num_rows`` need not be an integer) and Ridge gets the same ``sample_weight``.
    """
    return num_rows * l2_strength


def sklearn_lasso_alpha(l1_strength: float) -> float:
    r"""scikit-learn ``Lasso(alpha)`` equal to our L1 penalty: ``alpha = l1_strength / 2``.

    Ours is :math:`\frac{1}{N}\lVert y - Xw \rVert^2 + \lambda_1 \lVert w \rVert_1`; halved it is Lasso's
    :math:`\frac{1}{2N}\lVert y - Xw \rVert^2 + \frac{\lambda_1}{2} \lVert w \rVert_1`.
    """
    return l1_strength / 2


def sklearn_logistic_c(l2_strength: float, num_rows: float) -> float:
    r"""scikit-learn ``LogisticRegression(C)`` equal to our L2 penalty on N rows: ``C = 1 / (2 * N * l2_strength)``.

    Ours is :math:`\frac{1}{N}\sum_i \ell_i + \lambda_2 \lVert W \rVert_F^2` for any number of classes (the
    penalty is not divided by the number of logits); times :math:`C N` it is scikit-learn's
    :math:`C \sum_i \ell_i + \frac{1}{2}\lVert W \rVert_F^2` when :math:`C N \lambda_2 = 1/2`. With sample weights
    N is their sum and the log-losses are weighted on both sides.
    """
    if l2_strength <= 0:
        raise ValueError("scikit-learn's C is infinite without an L2 penalty: l2_strength must be > 0")
    return 1 / (2 * num_rows * l2_strength)


def sklearn_elastic_net_params(l1_strength: float, l2_strength: float) -> tuple[float, float]:
    r"""scikit-learn ``ElasticNet(alpha, l1_ratio)`` equal to our elastic net.

    Halving ours gives :math:`\frac{1}{2N}\lVert y - Xw \rVert^2 + \frac{\lambda_1}{2}\lVert w \rVert_1 +
    \frac{\lambda_2}{2}\lVert w \rVert^2`, which is ElasticNet's objective with :math:`\alpha\rho = \lambda_1/2`
    and :math:`\alpha(1-\rho) = \lambda_2`.

    Returns:
        ``(alpha, l1_ratio)``.

    """
    alpha = l1_strength / 2 + l2_strength
    if alpha == 0:
        raise ValueError("the elastic net needs l1_strength or l2_strength > 0")
    return alpha, (l1_strength / 2) / alpha
