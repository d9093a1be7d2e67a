"""The R-factor kernel of the streaming least-squares state: rows folded into R by QR, a sub-block at a time.

Pure maths on float64 NumPy buffers shared with torch (``torch.linalg.qr``, MKL's Householder QR on the CPU).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import numpy as np
import torch

__all__ = ["SUB_BLOCK_ROWS", "stacked_r_factor"]

#: Rows of data per QR when a chunk is folded into R (each QR factors these rows stacked under the current R).
#: Householder QR sweeps every row for each panel of columns: on a 65536-row chunk the panel falls out of cache
#: and the kernel is memory-bound (1e6 x 101 float64 on 2 cores: numpy 65536-row QRs 3.3 to 4.6 s; torch/MKL
#: 65536-row 1.4 s, 4096 to 16384-row 0.85 to 0.9 s, against 0.7 s for accumulating X^T X). 8192 rows keep the
#: panel in cache while the P rows of R re-factored with each block cost only P / 8192 more (1% at P = 101).
SUB_BLOCK_ROWS = 8192


@contextmanager
def _one_thread() -> Iterator[None]:
    """Run torch single-threaded inside the block (the QR kernel), restoring the thread count after.

    MKL's QR of an 8192 x 101 block is many short parallel regions, one per Householder panel; when the machine's
    cores are busy with anything else, each region waits for a descheduled thread: measured on 2 cores under load,
    one block took 600 ms with 2 threads against 15 ms with 1 (a 1e6-row pass 20 s against 1.8 s). With one
    thread the pass is at most about 2x the best 2-thread time on an idle machine, and never that collapse.
    """
    threads = torch.get_num_threads()
    if threads == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def stacked_r_factor(
    top: np.ndarray, extra_row: np.ndarray, groups: Sequence[np.ndarray] = (), shift: np.ndarray | None = None
) -> np.ndarray:
    r"""Return the R factor (P, P), non-negative diagonal, of :math:`[T; e^\top; G - 1 c^\top]`.

    The R-factor kernel. :math:`T` is ``top`` (P, P), :math:`e` ``extra_row`` (P,), :math:`G` the column groups
    ``groups`` side by side (n rows each, widths summing to P, any float dtype: e.g. X (n, D) and Y (n, K)) and
    :math:`c` ``shift`` (P,), zero when None. G's rows are converted to float64 and shifted into a buffer
    :data:`SUB_BLOCK_ROWS` at a time, each block factored under the R so far (e with the first), so a float32
    chunk is never copied whole; QR of blocks one after another is QR of the whole stack, up to rounding. Signs
    fixed, R is unique for a full-rank block, so merge trees that differ only in order agree to rounding.

    Parallel: the rows are cut into up to ``torch.get_num_threads()`` consecutive parts, each folded by its own
    thread with single-threaded QRs (torch releases the GIL), and the parts' R factors are stacked and factored
    once more (a TSQR tree of one level): every core works on its own blocks, with none of the waiting that
    parallel regions inside one small QR suffer (see :func:`_one_thread`).
    """
    width = top.shape[0]
    n_rows = groups[0].shape[0] if groups else 0
    parts = max(1, min(torch.get_num_threads(), n_rows // SUB_BLOCK_ROWS))
    bounds = np.linspace(0, n_rows, parts + 1).astype(int)
    zeros = np.zeros_like(top)

    def fold(part: int) -> np.ndarray:
        first, last = bounds[part], bounds[part + 1]
        start, row = (top, extra_row) if part == 0 else (zeros, np.zeros(width))
        return _fold_rows(start, row, [group[first:last] for group in groups], shift)

    with _one_thread():
        if parts == 1:
            r_factor = fold(0)
        else:
            with ThreadPoolExecutor(parts) as pool:
                factors = list(pool.map(fold, range(parts)))
            r_factor = torch.linalg.qr(torch.from_numpy(np.vstack(factors)), mode="r").R.numpy()
    signs = np.where(np.diag(r_factor) < 0, -1.0, 1.0)
    return np.asarray(r_factor * signs[:, None], dtype=np.float64)


def _fold_rows(
    top: np.ndarray, extra_row: np.ndarray, groups: Sequence[np.ndarray], shift: np.ndarray | None
) -> np.ndarray:
    """Fold the rows of ``groups`` (shifted) and ``extra_row`` into ``top``, a sub-block at a time; R (P, P)."""
    width = top.shape[0]
    n_rows = groups[0].shape[0] if groups else 0
    block_rows = max(1, min(SUB_BLOCK_ROWS, n_rows))
    # Column-major, the layout LAPACK factors in; rows 0..P-1 hold R, row P the extra row, then the data.
    buffer = np.zeros((width + 1 + block_rows, width), order="F")
    stacked = torch.from_numpy(buffer)  # shares the buffer's memory
    buffer[width] = extra_row
    return _fold_blocks(buffer, stacked, top, groups, shift, block_rows, n_rows)


def _fold_blocks(
    buffer: np.ndarray,
    stacked: torch.Tensor,
    r_factor: np.ndarray,
    groups: Sequence[np.ndarray],
    shift: np.ndarray | None,
    block_rows: int,
    n_rows: int,
) -> np.ndarray:
    """Factor ``block_rows`` rows of ``groups`` at a time under ``r_factor`` in ``buffer``; the last R (P, P)."""
    width = r_factor.shape[0]
    start = 0
    while True:
        stop = min(start + block_rows, n_rows)
        buffer[:width] = r_factor
        left = 0
        for group in groups:
            right = left + group.shape[1]
            rows = buffer[width + 1 : width + 1 + stop - start, left:right]
            if shift is None:
                rows[...] = group[start:stop]
            else:
                np.subtract(group[start:stop], shift[left:right], out=rows)
            left = right
        r_factor = torch.linalg.qr(stacked[: width + 1 + stop - start], mode="r").R.numpy()  # (P, P)
        buffer[width] = 0.0  # the extra row is in R now
        start = stop
        if start >= n_rows:
            return r_factor
