"""Matplotlib figures of a linear model: what the course notebooks drew by hand, made for TensorBoard.

Pure functions from arrays to ``matplotlib.figure.Figure``; no Lightning here. matplotlib is imported inside the
functions, and only its object API (``Figure``, drawn by :func:`render_png` on an Agg canvas): no pyplot state, no
GUI backend; it is slow to import, and ``lr-lightning --help`` must stay fast. A figure is garbage once drawn.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure
    from torch.utils.tensorboard import SummaryWriter

#: The layout each figure was made with (see :func:`_reuse`), without keeping the figure alive.
_LAYOUTS: weakref.WeakKeyDictionary[Figure, tuple] = weakref.WeakKeyDictionary()

__all__ = [
    "add_figure",
    "coefficients_figure",
    "decision_boundary_figure",
    "fitted_line_figure",
    "loss_curve_figure",
    "predicted_vs_actual_figure",
    "render_png",
    "residuals_figure",
    "ridge_path_figure",
]


def render_png(figure: Figure) -> tuple[bytes, int, int]:
    """Draw ``figure`` on an Agg canvas and encode it as an RGB PNG: ``(png, width, height)`` in pixels.

    zlib level 1: the plots' flat colours compress almost as well as at PIL's default 6, in a fraction of the time.
    """
    import io

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from PIL import Image

    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    rgba = np.asarray(canvas.buffer_rgba())
    output = io.BytesIO()
    Image.fromarray(rgba[:, :, :3]).save(output, format="PNG", compress_level=1)
    return output.getvalue(), rgba.shape[1], rgba.shape[0]


def add_figure(writer: SummaryWriter, tag: str, figure: Figure, step: int) -> None:
    """``writer.add_figure(tag, figure, step)``, the PNG drawn by :func:`render_png`.

    The same image entry as ``add_figure``'s, without its detours: pyplot (imported, then asked to close a figure
    it never managed) and a float32 copy of the pixels.
    """
    from tensorboard.compat.proto.summary_pb2 import Summary  # type: ignore[import-untyped]

    png, width, height = render_png(figure)
    image = Summary.Image(height=height, width=width, colorspace=3, encoded_image_string=png)
    writer._get_file_writer().add_summary(Summary(value=[Summary.Value(tag=tag, image=image)]), step)


def _new_figure(
    n_panels: int = 1, width: float = 4.0, height: float = 3.6, bottom: float = 0.55
) -> tuple[Figure, np.ndarray]:
    """Make a row of ``n_panels`` axes, each ``width`` x ``height`` inches, with fixed margins (``bottom``: inches).

    Fixed margins instead of constrained layout: measuring every tick label made constrained layout about two
    thirds of the time to render a figure, and the dashboard draws several figures per validation epoch.
    """
    from matplotlib.figure import Figure  # the object API: no pyplot state, no GUI backend

    left, right, top, gap = 0.75, 0.2, 0.35, 0.75  # inches
    total_width = width * n_panels
    figure = Figure(figsize=(total_width, height))
    figure.subplots_adjust(
        left=left / total_width,
        right=1 - right / total_width,
        bottom=bottom / height,
        top=1 - top / height,
        wspace=gap / (width - gap),  # wspace is a fraction of one axes' width
    )
    axes = np.atleast_1d(figure.subplots(1, n_panels, squeeze=False)[0])
    return figure, axes


def _reuse(into: Figure | None, layout: tuple, n_panels: int, **size: float) -> tuple[Figure, np.ndarray, bool]:
    """``into`` and its axes when it was made with the same ``layout``, else a new figure: ``(figure, axes, reused)``.

    A reused figure keeps its axes, ticks, texts and legend and gets new data only: it draws in about half the
    time of a new one, most of which goes into making tick marks and labels.
    """
    if into is not None and _LAYOUTS.get(into) == layout:
        return into, np.asarray(into.axes), True
    figure, axes = _new_figure(n_panels, **size)
    _LAYOUTS[figure] = layout
    return figure, axes, False


def _rescale(ax: Axes, points: np.ndarray) -> None:
    """Fit the view to the axes' lines and patches and to ``points`` (N, 2), the scatter's, as plotting them would."""
    ax.relim()
    ax.update_datalim(points)
    ax.autoscale_view()


def predicted_vs_actual_figure(
    predicted: np.ndarray, actual: np.ndarray, target_names: Sequence[str], into: Figure | None = None
) -> Figure:
    """One scatter per target of predictions (N, K) against the true values (N, K), with the diagonal.

    ``into``: a figure this function made before, redrawn with the new data when the targets are the same (here
    and in the other functions but :func:`decision_boundary_figure`).
    """
    figure, axes, reused = _reuse(into, ("predicted_vs_actual", *target_names), len(target_names))
    for k, (ax, name) in enumerate(zip(axes, target_names, strict=True)):
        if not reused:
            ax.scatter(np.empty(0), np.empty(0), s=10, alpha=0.6)
            ax.plot([], [], color="grey", linewidth=1, linestyle="--", label="perfect")
            ax.set(title=name, xlabel="actual", ylabel="predicted")
        low = float(min(actual[:, k].min(), predicted[:, k].min()))
        high = float(max(actual[:, k].max(), predicted[:, k].max()))
        points = np.column_stack([actual[:, k], predicted[:, k]])
        ax.collections[0].set_offsets(points)
        ax.lines[0].set_data([low, high], [low, high])
        _rescale(ax, points)
    if not reused:
        axes[0].legend(loc="upper left")
    return figure


def residuals_figure(
    predicted: np.ndarray, actual: np.ndarray, target_names: Sequence[str], into: Figure | None = None
) -> Figure:
    """One scatter per target of the residuals (actual - predicted) against the predictions."""
    figure, axes, reused = _reuse(into, ("residuals", *target_names), len(target_names))
    for k, (ax, name) in enumerate(zip(axes, target_names, strict=True)):
        if not reused:
            ax.scatter(np.empty(0), np.empty(0), s=10, alpha=0.6)
            ax.axhline(0.0, color="grey", linewidth=1, linestyle="--")
            ax.set(title=name, xlabel="predicted", ylabel="residual (actual - predicted)")
        points = np.column_stack([predicted[:, k], actual[:, k] - predicted[:, k]])
        ax.collections[0].set_offsets(points)
        _rescale(ax, points)
    return figure


def fitted_line_figure(
    feature: np.ndarray,
    targets: np.ndarray,
    predict: Callable[[np.ndarray], np.ndarray],
    feature_name: str,
    target_names: Sequence[str],
    into: Figure | None = None,
) -> Figure:
    """Draw the notebooks' plot for one input feature: the data and the fitted line, one panel per target.

    Args:
        feature: x of shape (N,).
        targets: y of shape (N, K).
        predict: maps x of shape (M, 1) to predictions (M, K).
        feature_name: the x axis label.
        target_names: K names.
        into: a figure this function made before, redrawn when the names are the same.

    """
    grid = np.linspace(float(feature.min()), float(feature.max()), 100)[:, None]
    line = predict(grid)
    figure, axes, reused = _reuse(into, ("fitted_line", feature_name, *target_names), len(target_names))
    for k, (ax, name) in enumerate(zip(axes, target_names, strict=True)):
        if not reused:
            ax.scatter(np.empty(0), np.empty(0), s=12, alpha=0.7, label="data")
            ax.plot([], [], color="tab:red", linewidth=2, label="fitted line")
            ax.set(title=name, xlabel=feature_name, ylabel=name)
        points = np.column_stack([feature, targets[:, k]])
        ax.collections[0].set_offsets(points)
        ax.lines[0].set_data(grid[:, 0], line[:, k])
        _rescale(ax, points)
    if not reused:
        axes[0].legend(loc="best")
    return figure


def decision_boundary_figure(
    features: np.ndarray,
    labels: np.ndarray,
    predict_proba: Callable[[np.ndarray], np.ndarray],
    feature_names: Sequence[str],
    class_names: Sequence[str],
) -> Figure:
    """Two features of a classifier: the points by class over the predicted class regions and the boundary.

    Args:
        features: x of shape (N, 2).
        labels: class indices (N,).
        predict_proba: maps (M, 2) to class probabilities (M, C).
        feature_names: the two axis labels.
        class_names: C names for the legend.

    """
    margin = 0.1 * (features.max(axis=0) - features.min(axis=0) + 1e-12)
    low, high = features.min(axis=0) - margin, features.max(axis=0) + margin
    xx, yy = np.meshgrid(np.linspace(low[0], high[0], 150), np.linspace(low[1], high[1], 150))
    probabilities = predict_proba(np.column_stack([xx.ravel(), yy.ravel()]))
    regions = probabilities.argmax(axis=1).reshape(xx.shape)
    from matplotlib.colors import ListedColormap

    figure, axes = _new_figure(1, width=5.0, height=4.2)
    ax = axes[0]
    n_classes = len(class_names)
    # a class's region in a light tint of its points' colour, so that misclassified points stand out
    colours = [f"C{c % 10}" for c in range(n_classes)]
    levels = np.arange(n_classes + 1) - 0.5
    ax.contourf(xx, yy, regions, levels=levels, cmap=ListedColormap(colours), alpha=0.2)
    if n_classes == 2:
        ax.contour(xx, yy, probabilities[:, 1].reshape(xx.shape), levels=[0.5], colors="black", linewidths=1.5)
    for c, name in enumerate(class_names):
        chosen = labels == c
        ax.scatter(features[chosen, 0], features[chosen, 1], s=12, color=colours[c], label=str(name))
    ax.set(xlabel=feature_names[0], ylabel=feature_names[1], title="decision regions")
    ax.legend(loc="best", title="class")
    return figure


#: Bars per panel of the coefficient figure: beyond this many features it shows the largest ones.
MAX_COEFFICIENT_BARS = 40


def coefficients_figure(
    coef: np.ndarray,
    reference: np.ndarray | None,
    feature_names: Sequence[str],
    output_names: Sequence[str],
    into: Figure | None = None,
) -> Figure:
    """Bars of the learned coefficients (K, D) in original units, next to the closed-form ones when given.

    With more than :data:`MAX_COEFFICIENT_BARS` features only that many are drawn, those of largest magnitude
    over the outputs (in feature order), and the titles say so: ten thousand labelled ticks would take minutes to
    draw and show nothing. ``into``: a figure this function made before, redrawn when the same bars are shown.
    """
    shown = np.arange(len(feature_names))
    if len(shown) > MAX_COEFFICIENT_BARS:
        shown = np.sort(np.argsort(-np.abs(coef).max(axis=0), kind="stable")[:MAX_COEFFICIENT_BARS])
    layout = ("coefficients", reference is None, *feature_names, *output_names, *shown.tolist())
    figure, axes, reused = _reuse(into, layout, len(output_names), height=4.0, bottom=1.0)
    suffix = f" ({len(shown)} largest of {len(feature_names)})" if len(shown) < len(feature_names) else ""
    positions = np.arange(len(shown))
    width = 0.4 if reference is not None else 0.8
    zeros = np.zeros(len(shown))
    for k, (ax, name) in enumerate(zip(axes, output_names, strict=True)):
        if not reused:
            ax.bar(positions - (width / 2 if reference is not None else 0), zeros, width, label="learned")
            if reference is not None:
                ax.bar(positions + width / 2, zeros, width, label="least squares")
            ax.axhline(0.0, color="grey", linewidth=0.8)
            ax.set_xticks(positions, [feature_names[j] for j in shown.tolist()], rotation=30, ha="right")
            ax.set(title=f"{name}{suffix}", ylabel="coefficient (original units)")
        for bars, heights in zip(ax.containers, [coef] if reference is None else [coef, reference], strict=True):
            for bar, height in zip(bars, heights[k, shown].tolist(), strict=True):
                bar.set_height(height)
        _rescale(ax, np.empty((0, 2)))
    if not reused:
        axes[0].legend(loc="best")
    return figure


def loss_curve_figure(
    train_losses: Sequence[tuple[int, float]],
    val_losses: Sequence[tuple[int, float]] = (),
    optimum: float | None = None,
    into: Figure | None = None,
) -> Figure:
    """Draw the loss per epoch on log-log axes, as the course notebook did (``plt.loglog(epoch_list, LOSS, '.-')``).

    Args:
        train_losses: (epoch, training loss) pairs, epochs counted from 0.
        val_losses: (epoch, validation loss) pairs, drawn too when given.
        optimum: least squares' training loss, drawn as a horizontal line when known and positive.
        into: a figure this function made before, redrawn when the same curves and optimum are drawn.

    """
    optimum = optimum if optimum is not None and optimum > 0 else None
    series = [(name, pairs) for name, pairs in (("train_loss", train_losses), ("val_loss", val_losses)) if pairs]
    layout = ("loss_curve", optimum, *(name for name, _ in series))
    figure, axes, reused = _reuse(into, layout, 1, width=5.0, height=3.8)
    ax = axes[0]
    if not reused:
        if optimum is not None:
            ax.axhline(optimum, color="tab:green", linestyle="--", linewidth=1, label=f"least squares {optimum:.4g}")
        for name, _ in series:
            ax.plot([], [], ".-", label=name)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.grid(True, which="major", alpha=0.4)
        ax.set(xlabel="epoch + 1", ylabel="loss", title="loss curve (log-log)")
        ax.legend(loc="best")
    curves = ax.lines[1:] if optimum is not None else ax.lines
    for line, (_, pairs) in zip(curves, series, strict=True):
        epochs, losses = np.asarray(pairs, dtype=float).T
        # epoch 0 cannot sit on a log axis; a loss of exactly 0 (an exact fit) neither
        line.set_data(epochs + 1.0, np.clip(losses, 1e-300, None))
    _rescale(ax, np.empty((0, 2)))
    return figure


def ridge_path_figure(
    l2_strengths: np.ndarray,
    scores: np.ndarray,
    best_index: int,
    criterion: str,
    into: Figure | None = None,
) -> Figure:
    """Draw a ridge path's cross-validation score against ``l2_strength`` (log x axis), the chosen one marked.

    Args:
        l2_strengths: the candidates, shape (A,), each >= 0, in any order. With a 0 among them the x axis is
            symmetric-log, linear below the smallest positive candidate, so that 0 has a place on it.
        scores: the criterion per candidate, shape (A,) (lower is better).
        best_index: the chosen candidate's index.
        criterion: the y axis label (what the scores are).
        into: a figure this function made before, redrawn when the criterion is the same.

    """
    strengths, values = np.asarray(l2_strengths, dtype=float), np.asarray(scores, dtype=float)
    order = np.argsort(strengths, kind="stable")
    figure, axes, reused = _reuse(into, ("ridge_path", criterion), 1, width=5.0, height=3.8)
    ax = axes[0]
    if not reused:
        ax.plot([], [], ".-", label=criterion)
        ax.plot([], [], "*", color="tab:red", markersize=14, label="chosen")
        ax.axvline(1.0, color="tab:red", linestyle="--", linewidth=1)
        ax.grid(True, which="major", alpha=0.4)
        ax.set(xlabel="l2_strength", ylabel=criterion)
        ax.legend(loc="best")
    positive = strengths[strengths > 0]
    if positive.size < strengths.size:  # a 0 cannot sit on a log axis
        ax.set_xscale("symlog", linthresh=float(positive.min()) if positive.size else 1.0)
    else:
        ax.set_xscale("log")
    chosen = float(strengths[best_index])
    ax.lines[0].set_data(strengths[order], values[order])
    ax.lines[1].set_data([chosen], [float(values[best_index])])
    ax.lines[2].set_xdata([chosen, chosen])
    ax.set_title(f"ridge path: chosen l2_strength {chosen:.4g}")
    _rescale(ax, np.empty((0, 2)))
    return figure
