"""Run `gradscope ARGS...` and SIGKILL this process at the point named by $KILL_POINT:

    write:N:before   the N-th checkpoint is fully written to its temporary file, not yet renamed
    write:N:during   the N-th checkpoint's temporary file is half written (truncated), not renamed
    write:N:after    right after the N-th checkpoint was renamed into place
    step:N           at the N-th training step (mid-epoch)

Used by test_kill_resume.py; the patches live here, not in the library.
"""
import os
import signal
import sys

import gradscope.training.trainer as trainer
from gradscope.cli import main

CHECKPOINTS = ("checkpoint.npz", "checkpoint.pt")


def _die():
    os.kill(os.getpid(), signal.SIGKILL)


def _patch_writes(n: int, when: str) -> None:
    real_replace = os.replace
    count = [0]

    def replace(src, dst, *args, **kwargs):
        if os.path.basename(os.fspath(dst)) not in CHECKPOINTS:
            return real_replace(src, dst, *args, **kwargs)
        count[0] += 1
        if count[0] == n and when == "during":
            with open(src, "r+b") as f:
                f.truncate(os.path.getsize(src) // 2)
        if count[0] == n and when in ("before", "during"):
            _die()
        real_replace(src, dst, *args, **kwargs)
        if count[0] == n:
            _die()

    os.replace = replace


def _patch_steps(n: int) -> None:
    real_step = trainer.Trainer._step
    count = [0]

    def step(self, *args, **kwargs):
        count[0] += 1
        if count[0] == n:
            _die()
        return real_step(self, *args, **kwargs)

    trainer.Trainer._step = step


if __name__ == "__main__":
    kind, n, *rest = os.environ["KILL_POINT"].split(":")
    if kind == "write":
        _patch_writes(int(n), rest[0])
    else:
        _patch_steps(int(n))
    sys.exit(main(sys.argv[1:]))
