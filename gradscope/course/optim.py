"""The course's optim: `next_w, config = rule(w, dw, config)` (gradscope.training.optim)."""
from gradscope.training.optim import adam, rmsprop, sgd, sgd_momentum  # noqa: F401

__all__ = ["sgd", "sgd_momentum", "rmsprop", "adam"]
