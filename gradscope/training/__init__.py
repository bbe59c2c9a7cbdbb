"""Generic training: update rules (optim), the minibatch Trainer, loss-curve plots."""
from gradscope.training.optim import UPDATE_RULES, adam, get_update_rule, rmsprop, sgd, sgd_momentum
from gradscope.training.trainer import ArrayDataset, EpochRecord, Trainer, TrainResult, clip_by_global_norm

__all__ = ["Trainer", "TrainResult", "EpochRecord", "ArrayDataset", "clip_by_global_norm",
           "sgd", "sgd_momentum", "rmsprop", "adam", "UPDATE_RULES", "get_update_rule"]
