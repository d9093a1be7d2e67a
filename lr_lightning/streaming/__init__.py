r"""Exact least squares and ridge regression from one streaming pass over row chunks, mergeable across processes.

For features :math:`X` (N, D) and targets :math:`Y` (N, K), read a chunk at a time
(:meth:`lr_lightning.data.stores.base.RowStore.chunks`), this package gives the same answers as
:mod:`lr_lightning.closed_form` (``numpy.linalg.lstsq`` on the whole matrix in memory): least squares, the
minimum-norm solution of a rank-deficient or underdetermined design, ridge for one strength or a whole path of
strengths, the exact error of any affine model and its gap to the optimum (the certificate of a fit), and the
choice of the ridge strength by exact leave-one-out (scikit-learn's ``RidgeCV``) or generalized cross-validation.
NumPy arrays in and out, float64 throughout; no Lightning.

* :mod:`~lr_lightning.streaming.state`: :class:`LeastSquaresState`, the pass's count, column means and R factor
  of the centred block :math:`[X, Y]` (a streaming TSQR, memory O((D + K)²) whatever N), and its merges.
* :mod:`~lr_lightning.streaming.solve`: :func:`solve` and :func:`ridge_path`, from the SVD of :math:`R_{11}`.
* :mod:`~lr_lightning.streaming.gap`: :func:`mean_squared_error` of any model, :func:`optimality_gap`.
* :mod:`~lr_lightning.streaming.cross_validation`: :class:`LeaveOneOut`, :func:`generalized_cross_validation`.
* :mod:`~lr_lightning.streaming.newton_logistic` (with :mod:`~lr_lightning.streaming.logistic_sums`): Newton's
  method for the L2-penalized log-loss from streamed, mergeable gradient and Hessian sums (imported from there).
"""

from lr_lightning.streaming.cross_validation import (
    LeaveOneOut,
    RidgeSelection,
    generalized_cross_validation,
    leave_one_out,
)
from lr_lightning.streaming.gap import mean_squared_error, optimality_gap, optimality_gap_per_target
from lr_lightning.streaming.r_factor import SUB_BLOCK_ROWS
from lr_lightning.streaming.solve import StreamingSolution, ridge_path, solve
from lr_lightning.streaming.state import LeastSquaresState, merge_all

__all__ = [
    "SUB_BLOCK_ROWS",
    "LeastSquaresState",
    "LeaveOneOut",
    "RidgeSelection",
    "StreamingSolution",
    "generalized_cross_validation",
    "leave_one_out",
    "mean_squared_error",
    "merge_all",
    "optimality_gap",
    "optimality_gap_per_target",
    "ridge_path",
    "solve",
]
