"""The demo's training-curve figures run forward in time when a warm-started second stage
restarts its epoch count (the shipped CNN's history: stage 1 epochs 1-4, then 1-10)."""
import numpy as np

from gradscope.demo.presenters import _history_figures


def test_two_stage_history_plots_forward():
    history = [{"epoch": e, "train_loss": 3.0 - 0.1 * i, "val_top1": 0.1 + 0.02 * i, **({"stage": 1} if i < 2 else {})}
               for i, e in enumerate([1, 2, 1, 2, 3])]
    for visual in _history_figures("cnn", history):
        for line in visual.image.axes[0].get_lines():
            xs = np.asarray(line.get_xdata())
            assert np.all(np.diff(xs) > 0) and list(xs) == [1, 2, 3, 4, 5]
