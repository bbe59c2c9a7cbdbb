"""The course's CaptioningSolver: gradscope's Trainer with the course's constructor,
`train()`, `loss_history` and its printed "(Iteration t / T) loss: x" lines.

Differences: each epoch visits the training captions in a permutation drawn from `seed`
(the course drew every minibatch at random, with replacement); an epoch is
num_train // batch_size minibatches, as in the course.
"""
from gradscope.course.coco_utils import caption_dataset
from gradscope.training.optim import UPDATE_RULES
from gradscope.training.trainer import Trainer

__all__ = ["CaptioningSolver"]

_DEFAULTS = {"update_rule": "sgd", "optim_config": None, "lr_decay": 1.0, "batch_size": 100,
             "num_epochs": 10, "print_every": 10, "verbose": True, "seed": 0}


class CaptioningSolver:
    """CaptioningSolver(model, data, update_rule='sgd', optim_config={}, lr_decay=1.0,
    batch_size=100, num_epochs=10, print_every=10, verbose=True, seed=0).

    data: a dict from coco_utils.load_coco_data (its train_* entries are used).
    After train(): loss_history (one loss per iteration), epoch, result (gradscope's TrainResult).
    """

    def __init__(self, model, data, **kwargs):
        unknown = sorted(set(kwargs) - set(_DEFAULTS))
        if unknown:
            raise ValueError(f"Unrecognized arguments {', '.join(repr(k) for k in unknown)}")
        settings = {**_DEFAULTS, **kwargs}
        if settings["update_rule"] not in UPDATE_RULES:
            raise ValueError(f"Invalid update_rule {settings['update_rule']!r}; "
                             f"choose one of {', '.join(UPDATE_RULES)}")
        self.model, self.data = model, data
        self.print_every, self.verbose = int(settings["print_every"]), bool(settings["verbose"])
        self.loss_history, self.epoch, self.result = [], 0, None
        self._trainer = Trainer(_Recording(model, self.loss_history), caption_dataset(data, "train"),
                                update_rule=settings["update_rule"], optim_config=settings["optim_config"],
                                lr_decay=settings["lr_decay"], batch_size=settings["batch_size"],
                                num_epochs=settings["num_epochs"], seed=settings["seed"], drop_last=True,
                                progress=self._report, callback=self._end_epoch)

    def train(self):
        """Run all epochs; model.params hold the final parameters."""
        self.result = self._trainer.train()
        return self.result

    def _report(self, done, total):
        if self.verbose and (done - 1) % self.print_every == 0:
            print(f"(Iteration {done} / {total}) loss: {self.loss_history[-1]:f}")

    def _end_epoch(self, record):
        self.epoch = record.epoch


class _Recording:
    """The model as the Trainer sees it, keeping every minibatch loss for the solver."""

    def __init__(self, model, history):
        self.model, self.params, self.history = model, model.params, history

    def loss(self, features, captions):
        loss, grads = self.model.loss(features, captions)
        self.history.append(float(loss))
        return loss, grads
