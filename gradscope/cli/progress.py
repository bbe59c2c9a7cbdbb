"""Progress of long commands on stderr: a bar on a terminal, and plain lines (one every
INTERVAL seconds, and one at the end) when stderr is a file or a pipe, so that logs
show a long run is alive. Library code reports progress through callbacks; only the
command line draws it."""
from __future__ import annotations

import os
import sys
import time

INTERVAL_ENV, DEFAULT_INTERVAL = "GRADSCOPE_PROGRESS_INTERVAL", 10.0


def progress_interval() -> float:
    """Seconds between progress lines: $GRADSCOPE_PROGRESS_INTERVAL (read when a progress is
    drawn, never at import), else DEFAULT_INTERVAL. GradscopeError for a value that is not a
    finite number >= 0."""
    import math

    from gradscope.errors import GradscopeError

    text = os.environ.get(INTERVAL_ENV)
    if text is None:
        return DEFAULT_INTERVAL
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value >= 0):
        raise GradscopeError(f"{INTERVAL_ENV} must be a number of seconds >= 0, got {text!r}")
    return value


class Progress:
    """progress.update(done, total=None, **info); progress.write(line); progress.close().

    enabled=False draws nothing; on a terminal a tqdm bar, otherwise a line
    `gradscope: DESC: done/total UNIT (P%), S s elapsed[, key value ...]` every progress_interval() seconds."""

    def __init__(self, desc: str, total=None, unit: str = "it", enabled: bool = True, stream=None):
        self.desc, self.total, self.unit = desc, total, unit
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.start = self.last = time.monotonic()
        self.done, self.info, self.bar = 0, {}, None
        self.interval = progress_interval() if enabled and not _is_terminal(self.stream) else DEFAULT_INTERVAL
        if enabled and _is_terminal(self.stream):
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=desc, unit=unit, file=self.stream, leave=False, dynamic_ncols=True)

    def update(self, done, total=None, **info) -> None:
        """Report that `done` of `total` (or the known total) units are finished."""
        if not self.enabled:
            return
        self.done = done
        self.total = total if total is not None else self.total
        self.info = info
        if self.bar is not None:
            self.bar.total = self.total
            self.bar.n = done
            if info:
                self.bar.set_postfix({k: _fmt(v) for k, v in info.items()}, refresh=False)
            self.bar.refresh()
        elif time.monotonic() - self.last >= self.interval or (self.done == 1 and self.last == self.start):
            self._line()

    def callback(self, key: str | None = None):
        """A method callback (done, info) (gradscope.methods' convention: info['total'] is the
        run's number of units) that updates this progress, showing the mean of info[key]."""
        import numpy as np

        def cb(done, info):
            extra = {key: float(np.mean(info[key]))} if key is not None and key in info else {}
            self.update(done, info.get("total"), **extra)

        return cb

    def write(self, line: str) -> None:
        """A message line on stderr that does not break the bar."""
        if self.bar is not None:
            self.bar.write(line, file=self.stream)
        else:
            print(line, file=self.stream, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        elif self.enabled and self.done:
            self._line(final=True)
        self.enabled = False

    def _line(self, final: bool = False) -> None:
        self.last = time.monotonic()
        elapsed = self.last - self.start
        of = f"/{self.total}" if self.total else ""
        pct = f" ({100 * self.done / self.total:.0f}%)" if self.total else ""
        info = "".join(f", {k} {_fmt(v)}" for k, v in self.info.items())
        when = f"done in {elapsed:.0f} s" if final else f"{elapsed:.0f} s elapsed"
        print(f"gradscope: {self.desc}: {self.done}{of} {self.unit}{pct}, {when}{info}", file=self.stream, flush=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _fmt(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _is_terminal(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
