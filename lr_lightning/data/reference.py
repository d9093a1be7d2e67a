"""The exact least-squares reference of the training rows, from one streaming pass over any store.

The pass folds the training rows, chunk by chunk, into a float64
:class:`~lr_lightning.streaming.LeastSquaresState` (a streaming QR of ``[X, Y]``, memory O((D + K)²) whatever
N). Under DDP each rank reads only its covering shard and the ranks' states are merged in rank order, so every
rank holds the single-process state. From it come, without another pass, the least-squares optimum (with or
without an intercept, the minimum-norm one on a rank-deficient design) and the exact mean squared error of any
affine model, the optimality certificate (:func:`lr_lightning.streaming.optimality_gap`).
"""

from __future__ import annotations

from lr_lightning.closed_form import LeastSquaresSolution
from lr_lightning.data.ranks import Ranks
from lr_lightning.data.rows import CHUNK_ROWS
from lr_lightning.data.stores.base import RowStore
from lr_lightning.streaming import LeastSquaresState, merge_all, solve

__all__ = ["MAX_REFERENCE_WIDTH", "TrainingReference", "chunk_rows_for", "gather_state", "training_state"]

#: The widest ``[X, Y]`` (D + K columns) whose state is computed: R is (D + K)² float64 (128 MB at 4096), and
#: each chunk costs O(n (D + K)²). Wider data gets no reference (the optimality gap is skipped with a note).
MAX_REFERENCE_WIDTH = 4096

#: Values per chunk of a streaming pass (64 MB of float64): fewer rows per chunk for wide data.
CHUNK_VALUES = 2**23


def chunk_rows_for(num_columns: int) -> int:
    """Rows per chunk of a streaming pass over ``num_columns`` columns: CHUNK_ROWS, fewer for wide data."""
    return max(256, min(CHUNK_ROWS, CHUNK_VALUES // max(num_columns, 1)))


def gather_state(state: LeastSquaresState, ranks: Ranks) -> LeastSquaresState:
    """Return the merge of every rank's ``state`` in rank order (a collective under DDP; ``state`` for one process)."""
    if ranks.all_gather is None:
        return state
    gathered = ranks.all_gather(state.to_vector())  # (world_size, 3 + P + P²)
    return merge_all([LeastSquaresState.from_vector(row, state.n_features, state.n_targets) for row in gathered])


def training_state(store: RowStore, ranks: Ranks | None = None) -> LeastSquaresState | None:
    """Stream the training rows of a regression ``store`` into a float64 least-squares state (weighted if they are).

    Args:
        store: the rows (in memory or on disk); targets (N, K).
        ranks: the processes sharing the pass: each reads its covering shard, the states are merged in rank order
            (a collective: every rank must call it). ``None``: this process reads every row.

    Returns:
        The state of all training rows, or ``None`` for class labels or data wider than
        :data:`MAX_REFERENCE_WIDTH` columns.

    """
    num_features, num_targets = store.widths
    if store.task != "regression" or num_features + num_targets > MAX_REFERENCE_WIDTH:
        return None
    ranks = ranks or Ranks()
    state = LeastSquaresState(num_features, num_targets)
    rows = chunk_rows_for(num_features + num_targets)
    for features, targets, weights in store.chunks("train", rows, ranks.rank, ranks.world_size):
        state.update(features, targets.reshape(len(targets), -1), weights=weights)
    return gather_state(state, ranks)


class TrainingReference:
    """A store's least-squares state of the training rows, streamed at most once, and its solutions.

    The one reference every reader of a fit shares (the optimality gap, the dashboard, the end-of-fit table).
    """

    def __init__(self) -> None:
        self._state: tuple[LeastSquaresState | None] | None = None  # (state,) once streamed
        self._solutions: dict[bool, LeastSquaresSolution] = {}

    def state(self, store: RowStore, ranks: Ranks) -> LeastSquaresState | None:
        """Return the state of ``store``'s training rows (:func:`training_state` with ``ranks`` the first time)."""
        if self._state is None:
            self._state = (training_state(store, ranks),)
        return self._state[0]

    def share(self, state: LeastSquaresState) -> None:
        """Take the state of the training rows that a pass solver streamed, unless one is held already."""
        if self._state is None:
            self._state = (state,)

    def solution(self, store: RowStore, fit_intercept: bool) -> LeastSquaresSolution | None:
        """Least squares from the state (streamed by this process alone if not yet), solved once per intercept."""
        if fit_intercept not in self._solutions:
            state = self.state(store, Ranks())
            if state is None:
                return None
            self._solutions[fit_intercept] = solve(state, fit_intercept)
        return self._solutions[fit_intercept]
