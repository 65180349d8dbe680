"""Open the calibration, what-if and study pages in a real headless Chromium (Debian's `chromium`), driven
through its DevTools protocol over a pipe (`--remote-debugging-pipe`: NUL-separated JSON on fds 3 and 4, no
websocket library): no console message, exception or failed load at all, nothing fetched from the network,
sortable tables and tap-to-show values that work, no sideways scrolling in a narrow window, and a screenshot
that is not blank (PNG decoded with zlib and numpy).
"""
from __future__ import annotations

import base64
import json
import os
import select
import shutil
import struct
import subprocess
import time
import zlib
from pathlib import Path

import numpy as np
import pytest

from reports.calibration_data import load_inputs
from reports.calibration_report import render_calibration
from reports.render import write_html
from reports.whatif_report import render_whatif
from report_fakes import fake_inputs, fake_sweep_rows

WINDOWS = {"wide": (1280, 1400), "narrow": (390, 900)}
TIMEOUT_S = 60


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    assert path, "headless Chromium is needed: apt-get install -y chromium (.ci/run installs it)"
    return path


class Browser:
    """One headless Chromium and one page, spoken to through the DevTools protocol over a pipe."""

    def __init__(self, tmp: Path):
        cmd_r, self._cmd_w = os.pipe()  # we write commands; Chromium reads them on fd 3
        self._out_r, out_w = os.pipe()  # Chromium writes replies and events on fd 4
        self.proc = subprocess.Popen(
            [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
             "--remote-debugging-pipe", f"--user-data-dir={tmp / 'profile'}",
             "--host-resolver-rules=MAP * ~NOTFOUND", "about:blank"],  # any network fetch fails, and is logged
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, pass_fds=(3, 4),
            preexec_fn=lambda: (os.dup2(cmd_r, 3), os.dup2(out_w, 4)))
        os.close(cmd_r)
        os.close(out_w)
        self._buf, self._next_id, self.events = b"", 0, []
        page = next(t for t in self.call("Target.getTargets")["targetInfos"] if t["type"] == "page")
        self.session = self.call("Target.attachToTarget", {"targetId": page["targetId"], "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log"):
            self.call(f"{domain}.enable", page=True)

    def _message(self, deadline: float) -> dict:
        while b"\0" not in self._buf:
            ready, _, _ = select.select([self._out_r], [], [], max(0.0, deadline - time.time()))
            assert ready, "Chromium did not answer in time"
            chunk = os.read(self._out_r, 1 << 20)
            assert chunk, "Chromium closed the pipe"
            self._buf += chunk
        raw, self._buf = self._buf.split(b"\0", 1)
        return json.loads(raw)

    def call(self, method: str, params: dict | None = None, page: bool = False) -> dict:
        """Send one command (to the page's session if `page`) and return its result; events are kept."""
        self._next_id += 1
        msg = {"id": self._next_id, "method": method, "params": params or {}}
        if page:
            msg["sessionId"] = self.session
        os.write(self._cmd_w, json.dumps(msg).encode() + b"\0")
        deadline = time.time() + TIMEOUT_S
        while True:
            m = self._message(deadline)
            if m.get("id") == self._next_id:
                assert "error" not in m, m["error"]
                return m["result"]
            self.events.append(m)

    def js(self, expression: str):
        """Evaluate JavaScript in the page and return its value."""
        res = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True}, page=True)
        assert "exceptionDetails" not in res, res["exceptionDetails"]
        return res["result"].get("value")

    def open(self, page: Path, size: tuple[int, int]) -> None:
        """Load `page` from file in a window of `size` and wait for its load event."""
        self.call("Emulation.setDeviceMetricsOverride", {"width": size[0], "height": size[1],
                                                         "deviceScaleFactor": 1, "mobile": False}, page=True)
        self.events.clear()
        self.call("Page.navigate", {"url": page.as_uri()}, page=True)
        deadline = time.time() + TIMEOUT_S
        while not any(e.get("method") == "Page.loadEventFired" for e in self.events):
            self.events.append(self._message(deadline))

    def complaints(self) -> list[str]:
        """Console calls, uncaught exceptions and log entries (failed loads included) since the last open."""
        out = []
        for e in self.events:
            kind, params = e.get("method"), e.get("params", {})
            if kind == "Runtime.consoleAPICalled":
                out.append(f"console.{params['type']}: {[a.get('value') for a in params['args']]}")
            elif kind == "Runtime.exceptionThrown":
                out.append(f"exception: {params['exceptionDetails'].get('exception', {}).get('description')}")
            elif kind == "Log.entryAdded":
                out.append(f"log {params['entry']['level']}: {params['entry']['text']}")
        return out

    def screenshot(self, png: Path) -> None:
        png.write_bytes(base64.b64decode(self.call("Page.captureScreenshot", {"format": "png"}, page=True)["data"]))

    def close(self) -> None:
        try:
            self.call("Browser.close")
            self.proc.wait(timeout=20)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
            os.close(self._cmd_w)
            os.close(self._out_r)


@pytest.fixture
def browser(tmp_path):
    b = Browser(tmp_path)
    yield b
    b.close()


def _unfilter_row(kind: int, line: bytes, prev: bytes, bpp: int) -> bytes:
    """Undo one PNG row filter (types 0-4 of the PNG spec); Sub/Up are vectorised, Average/Paeth looped."""
    cur, up = np.frombuffer(line, np.uint8), np.frombuffer(prev, np.uint8)
    if kind == 0:
        return line
    if kind == 1:
        return np.cumsum(cur.reshape(-1, bpp).astype(np.int64), axis=0).astype(np.uint8).tobytes()
    if kind == 2:
        return (cur + up).tobytes()
    out = bytearray(line)
    for i in range(len(out)):
        a = out[i - bpp] if i >= bpp else 0
        if kind == 3:
            out[i] = (out[i] + ((a + prev[i]) >> 1)) & 0xFF
            continue
        b, c = prev[i], prev[i - bpp] if i >= bpp else 0
        pa, pb, pc = abs(b - c), abs(a - c), abs(a + b - 2 * c)
        out[i] = (out[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
    return bytes(out)


def png_pixels(path: Path) -> np.ndarray:
    """Decode an 8-bit RGB/RGBA non-interlaced PNG (what Chromium writes) to an (H, W, channels) array."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, head = 8, b"", None
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        if kind == b"IHDR":
            head = struct.unpack(">IIBBBBB", data[pos + 8:pos + 8 + n])
        elif kind == b"IDAT":
            idat += data[pos + 8:pos + 8 + n]
        pos += 12 + n
    w, h, depth, color, _, _, interlace = head
    assert depth == 8 and color in (2, 6) and interlace == 0, head
    bpp, raw = (3 if color == 2 else 4), zlib.decompress(idat)
    stride, prev, rows = w * (3 if color == 2 else 4), bytes(w * bpp), []
    for y in range(h):
        start = y * (stride + 1)
        prev = _unfilter_row(raw[start], raw[start + 1:start + 1 + stride], prev, bpp)
        rows.append(prev)
    return np.frombuffer(b"".join(rows), np.uint8).reshape(h, w, bpp)


def assert_not_blank(png: Path, size: tuple[int, int]) -> None:
    px = png_pixels(png)[..., :3]
    assert px.shape[:2] == (size[1], size[0])
    colours = np.unique(px.reshape(-1, 3), axis=0)
    white = np.all(px == 255, axis=2).mean()
    assert len(colours) > 50 and 0.2 < white < 0.995, (len(colours), white)


def _filter_row(kind: int, row: np.ndarray, prev: np.ndarray, bpp: int) -> bytes:
    """PNG-encode one row with filter `kind` (the inverse of _unfilter_row), for the decoder's test."""
    x, b = row.astype(int), prev.astype(int)
    a = np.concatenate([np.zeros(bpp, int), x[:-bpp]])
    c = np.concatenate([np.zeros(bpp, int), b[:-bpp]])
    pa, pb, pc = abs(b - c), abs(a - c), abs(a + b - 2 * c)
    paeth = np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))
    pred = {0: 0, 1: a, 2: b, 3: (a + b) // 2, 4: paeth}[kind]
    return bytes([kind]) + ((x - pred) % 256).astype(np.uint8).tobytes()


def test_png_decoder_reads_a_known_image(tmp_path):
    """The decoder itself: a 4x5 RGB image, each row written with another filter type, decodes exactly."""
    px = np.random.default_rng(0).integers(0, 256, (5, 4, 3), dtype=np.uint8)
    prev, raw = np.zeros(12, np.uint8), b""
    for kind, row in enumerate(px.reshape(5, 12)):
        raw, prev = raw + _filter_row(kind, row, prev, 3), row
    chunk = lambda k, d: struct.pack(">I", len(d)) + k + d + struct.pack(">I", zlib.crc32(k + d))  # noqa: E731
    head = chunk(b"IHDR", struct.pack(">IIBBBBB", 4, 5, 8, 2, 0, 0, 0))
    (tmp_path / "x.png").write_bytes(b"\x89PNG\r\n\x1a\n" + head + chunk(b"IDAT", zlib.compress(raw))
                                     + chunk(b"IEND", b""))
    assert np.array_equal(png_pixels(tmp_path / "x.png"), px)


def test_console_errors_are_caught(browser, tmp_path):
    """The harness sees a console error, an uncaught exception and a failed fetch (so a clean run means something)."""
    page = tmp_path / "bad.html"
    page.write_text("<p>x</p><img src='https://example.invalid/a.png'>"
                    "<script>console.error('boom'); undefinedFunction();</script>")
    browser.open(page, (300, 200))
    time.sleep(0.2)
    browser.js("1")  # drain the events that came meanwhile
    text = " ".join(browser.complaints())
    assert "boom" in text and "undefinedFunction" in text and "ERR_NAME_NOT_RESOLVED" in text, text


def _page(report: str) -> str:
    if report == "calibration-shipped":  # whatever calibration data the repository ships
        return render_calibration(load_inputs("h100-sxm", "triton"))
    if report == "study":
        from idealrt.cli_study import collect
        from reports.study_report import render_study

        return render_study(collect(["llama-3.1-8b", "mixtral-8x7b"], ["h100-sxm", "h200"], ["triton", "torch"]))
    return render_calibration(fake_inputs()) if report == "calibration" else render_whatif(fake_sweep_rows())


SORT_FIRST_NUMERIC_COLUMN = """(() => {
  const cell = document.querySelector("table.sortable td.num");
  const table = cell.closest("table"), idx = cell.cellIndex, th = table.tHead.rows[0].cells[idx];
  const column = () => Array.from(table.tBodies[0].rows, r => parseFloat(r.cells[idx].dataset.v));
  th.click();
  const up = column();
  th.click();
  return [up, column(), th.getAttribute("aria-sort")];
})()"""

TAP_POINT = """(() => {
  const pt = document.querySelector("svg .pt");
  const r = pt.getBoundingClientRect();
  pt.dispatchEvent(new MouseEvent("click", {bubbles: true, clientX: r.x + 2, clientY: r.y + 2}));
  const tip = document.getElementById("tip");
  return [getComputedStyle(tip).display, tip.textContent, pt.querySelector("title").textContent];
})()"""


@pytest.mark.parametrize("report", ["calibration", "whatif", "study", "calibration-shipped"])
def test_report_works_in_chromium(report, browser, tmp_path):
    page = write_html(tmp_path / f"{report}.html", _page(report))
    for name, size in WINDOWS.items():
        browser.open(page, size)
        png = tmp_path / f"{report}-{name}.png"
        browser.screenshot(png)
        assert browser.complaints() == [], f"{name} window"
        assert_not_blank(png, size)
        width = browser.js("[document.documentElement.scrollWidth, window.innerWidth]")
        assert width[0] <= width[1], f"{name} window scrolls sideways: {width}"
    if report == "calibration-shipped":
        return
    up, down, state = browser.js(SORT_FIRST_NUMERIC_COLUMN)
    assert up == sorted(up) and down == sorted(up, reverse=True) and state == "descending" and len(up) > 1
    shown, text, title = browser.js(TAP_POINT)
    assert shown == "block" and text == title != ""
    assert browser.complaints() == []
