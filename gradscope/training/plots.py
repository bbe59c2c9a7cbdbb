"""Loss-curve figure for a TrainResult (matplotlib, Agg backend; no display needed)."""
from __future__ import annotations

import numpy as np

from gradscope.fileio import atomic_path

__all__ = ["plot_loss_curve"]


def plot_loss_curve(result, path, title: str = "Training loss") -> None:
    """Write a PNG: per-iteration training loss with a moving average, and each epoch's
    validation numbers in a second panel when there are any."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    val_keys = sorted({k for r in result.epochs for k in r.val})
    fig, axes = plt.subplots(1, 2 if val_keys else 1, figsize=(11 if val_keys else 6, 4), squeeze=False)
    _plot_train(axes[0, 0], result, title)
    if val_keys:
        _plot_val(axes[0, 1], result, val_keys)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)


def _plot_train(ax, result, title):
    loss = np.asarray(result.loss_history, dtype=float)
    ax.plot(np.arange(1, len(loss) + 1), loss, lw=0.8, alpha=0.5, label="loss")
    window = max(1, len(loss) // 50)
    if window > 1:
        smooth = np.convolve(loss, np.ones(window) / window, mode="valid")
        ax.plot(np.arange(window, len(loss) + 1), smooth, lw=1.5, label=f"mean of {window}")
        ax.legend()
    ax.set(xlabel="iteration", ylabel="loss", title=title)


def _plot_val(ax, result, keys):
    for key in keys:
        pts = [(r.epoch, r.val[key]) for r in result.epochs if key in r.val]
        ax.plot(*zip(*pts), marker="o", label=key)
    ax.set(xlabel="epoch", title="validation")
    ax.legend()
