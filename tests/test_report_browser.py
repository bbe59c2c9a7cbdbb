"""The demo report in a real browser: headless Chromium (Debian's `chromium`, which
.ci/run installs) opens index.html offline; every image must load and the console stay
free of errors; a full-page screenshot is saved. Chromium is driven over the DevTools
protocol on a pipe (--remote-debugging-pipe: JSON messages ending in NUL on fds 3/4),
with the standard library only."""
from __future__ import annotations

import base64
import json
import os
import select
import shutil
import subprocess
import time

import numpy as np
import pytest
from demo_models import use_tiny_models
from PIL import Image

from gradscope.demo import run_demo

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
TIMEOUT = 60.0

CHECK_IMAGES = """JSON.stringify(Array.from(document.images).map(
    i => ({alt: i.alt, complete: i.complete, width: i.naturalWidth, height: i.naturalHeight})))"""


def _browser() -> str:
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    pytest.fail("headless Chromium is needed for the report test but none was found on PATH "
                f"(looked for {', '.join(BROWSERS)}); install it: `apt-get install chromium` (.ci/run does)")


class DevTools:
    """A Chromium process and its DevTools-protocol pipe; events are kept in `events`."""

    def __init__(self, binary: str, profile_dir: str):
        cmd_r, self._cmd_w = os.pipe()  # we write commands, Chromium reads fd 3
        self._res_r, res_w = os.pipe()  # Chromium writes fd 4, we read

        def child_fds():
            os.dup2(cmd_r, 3)
            os.dup2(res_w, 4)

        self.proc = subprocess.Popen(
            [binary, "--headless=new", "--no-sandbox", "--disable-gpu", "--remote-debugging-pipe",
             "--no-first-run", "--no-default-browser-check", "--disable-extensions", "--hide-scrollbars",
             f"--user-data-dir={profile_dir}", "--window-size=1280,900", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            preexec_fn=child_fds, close_fds=False)
        os.close(cmd_r)
        os.close(res_w)
        self._buf = b""
        self._next_id = 0
        self.events = []

    def send(self, method: str, params=None, session=None) -> dict:
        """Send a command and wait for its reply (events arriving meanwhile are kept)."""
        self._next_id += 1
        msg = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self._cmd_w, json.dumps(msg).encode() + b"\0")
        while True:
            reply = self._receive()
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise AssertionError(f"DevTools {method} failed: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_event(self, method: str) -> dict:
        for i, ev in enumerate(self.events):
            if ev.get("method") == method:
                return self.events.pop(i)
        while True:
            ev = self._receive()
            if ev.get("method") == method:
                return ev
            self.events.append(ev)

    def _receive(self) -> dict:
        deadline = time.monotonic() + TIMEOUT
        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([self._res_r], [], [], max(left, 0))
            if not ready:
                raise AssertionError(f"Chromium did not answer within {TIMEOUT:.0f} s")
            chunk = os.read(self._res_r, 1 << 20)
            if not chunk:
                err = self.proc.stderr.read().decode(errors="replace")[-2000:] if self.proc.poll() is not None else ""
                raise AssertionError(f"Chromium closed the DevTools pipe; stderr tail:\n{err}")
            self._buf += chunk
        raw, self._buf = self._buf.split(b"\0", 1)
        return json.loads(raw)

    def close(self):
        try:
            self.send("Browser.close")
        except (AssertionError, OSError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc.stderr.close()
        os.close(self._cmd_w)
        os.close(self._res_r)


def _open_page(dt: DevTools, url: str) -> str:
    target = dt.send("Target.createTarget", {"url": "about:blank"})["targetId"]
    session = dt.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
    for domain in ("Page", "Runtime", "Log"):
        dt.send(f"{domain}.enable", session=session)
    dt.send("Emulation.setDeviceMetricsOverride",
            {"width": 1280, "height": 900, "deviceScaleFactor": 1, "mobile": False}, session=session)
    dt.send("Page.navigate", {"url": url}, session=session)
    dt.wait_event("Page.loadEventFired")
    return session


def _problems(events) -> list:
    """Console errors/warnings, uncaught exceptions and failed loads seen by the page."""
    out = []
    for ev in events:
        method, p = ev.get("method"), ev.get("params", {})
        if method == "Runtime.exceptionThrown":
            details = p.get("exceptionDetails", {})
            out.append(f"exception: {details.get('text')} {details.get('exception', {}).get('description', '')}")
        elif method == "Runtime.consoleAPICalled" and p.get("type") in ("error", "warning", "assert"):
            out.append(f"console.{p.get('type')}: {[a.get('value', a.get('description')) for a in p.get('args', [])]}")
        elif method == "Log.entryAdded" and p.get("entry", {}).get("level") in ("error", "warning"):
            out.append(f"log {p['entry']['level']}: {p['entry'].get('text')} {p['entry'].get('url', '')}")
    return out


def _screenshot(dt: DevTools, session: str, path) -> None:
    metrics = dt.send("Page.getLayoutMetrics", session=session)
    size = metrics.get("cssContentSize") or metrics["contentSize"]
    clip = {"x": 0, "y": 0, "width": 1280, "height": min(int(size["height"]) + 1, 16000), "scale": 1}
    shot = dt.send("Page.captureScreenshot", {"format": "png", "clip": clip, "captureBeyondViewport": True},
                   session=session)
    with open(path, "wb") as f:
        f.write(base64.b64decode(shot["data"]))


def test_report_renders_in_headless_chromium(tmp_path, monkeypatch):
    binary = _browser()
    use_tiny_models(monkeypatch)
    result = run_demo(tmp_path / "demo", seed=0, quick=True)
    # the report must work alone: move it away from its images folder before opening it
    alone = tmp_path / "alone"
    alone.mkdir()
    page = alone / "index.html"
    shutil.copy(result.report_path, page)
    dt = DevTools(binary, str(tmp_path / "profile"))
    try:
        session = _open_page(dt, page.as_uri())
        images = json.loads(dt.send("Runtime.evaluate", {"expression": CHECK_IMAGES, "returnByValue": True},
                                    session=session)["result"]["value"])
        title = dt.send("Runtime.evaluate", {"expression": "document.title", "returnByValue": True},
                        session=session)["result"]["value"]
        shot = tmp_path / "report.png"
        _screenshot(dt, session, shot)
        problems = _problems(dt.events)
    finally:
        dt.close()
    assert title == "gradscope demo"
    n_pngs = sum(len(s["images"]) for s in result.results["sections"].values())
    assert len(images) >= n_pngs > 0
    broken = [im["alt"] for im in images if not (im["complete"] and im["width"] > 0 and im["height"] > 0)]
    assert not broken, f"images that did not load: {broken}"
    assert not problems, problems
    with Image.open(shot) as im:
        assert im.format == "PNG" and im.size[0] == 1280 and im.size[1] > 900
        small = np.asarray(im.convert("RGB").resize((64, 64))).reshape(-1, 3)
    assert len(np.unique(small, axis=0)) > 20  # not a blank page


def test_browser_check_catches_broken_images_and_errors(tmp_path):
    """The checks above are not vacuous: a missing image and a script error are seen."""
    binary = _browser()
    page = tmp_path / "bad.html"
    page.write_text('<!DOCTYPE html><html><head><title>bad</title></head><body>'
                    '<img alt="missing" src="nope.png"><script>console.error("boom"); undefined_fn();</script>'
                    '</body></html>', encoding="utf-8")
    dt = DevTools(binary, str(tmp_path / "profile"))
    try:
        session = _open_page(dt, page.as_uri())
        images = json.loads(dt.send("Runtime.evaluate", {"expression": CHECK_IMAGES, "returnByValue": True},
                                    session=session)["result"]["value"])
        problems = _problems(dt.events)
    finally:
        dt.close()
    assert images == [{"alt": "missing", "complete": True, "width": 0, "height": 0}]
    assert any("boom" in p for p in problems) and any("undefined_fn" in p for p in problems)
    assert any("nope.png" in p for p in problems)
