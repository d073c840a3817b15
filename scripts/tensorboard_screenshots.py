"""Screenshots of TensorBoard's SCALARS, IMAGES and HPARAMS views of a logdir, in headless Chromium.

Starts ``tensorboard`` on 127.0.0.1, drives Chromium through its DevTools protocol (to open the
parallel-coordinates tab, a click inside the HPARAMS view), writes PNGs and stops both. Needs
``chromium`` (``apt-get install chromium``) and ``pip install websockets``. The images in
docs/img/ were made with (see docs/img/tensorboard.md):

    python scripts/tensorboard_screenshots.py logs/train/multiruns/<date>/tensorboard docs/img
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import json
import shutil
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

# (file name, URL fragment, text of a tab to click once the view is drawn)
VIEWS = (
    ("tensorboard_scalars.png", "#scalars&tagFilter=", None),
    ("tensorboard_images.png", "#images", None),
    ("tensorboard_hparams.png", "#hparams", None),
    ("tensorboard_hparams_parallel.png", "#hparams", "PARALLEL COORDINATES"),
)
# ticks the HPARAMS column checkboxes whose name matches, unticks the other columns (names hold
# a '.' or '/'; the status boxes, "Success" etc., are left alone)
SHOW_COLUMNS_JS = """
(pattern) => {
  const wanted = new RegExp(pattern);
  const walk = (root, found) => {
    for (const el of root.querySelectorAll('*')) {
      if (el.shadowRoot) walk(el.shadowRoot, found);
      if (el.tagName === 'PAPER-CHECKBOX') found.push(el);
    }
    return found;
  };
  let changed = 0;
  for (const box of walk(document, [])) {
    const name = box.textContent.trim();
    if (!/[./]/.test(name) || box.checked === wanted.test(name)) continue;
    box.click();
    changed += 1;
  }
  return changed;
}
"""
# finds an element by its text through every shadow root (TensorBoard's Polymer views)
CLICK_TEXT_JS = """
(text) => {
  const walk = (root) => {
    for (const el of root.querySelectorAll('*')) {
      if (el.shadowRoot) { const hit = walk(el.shadowRoot); if (hit) return hit; }
      if (['PAPER-TAB', 'BUTTON', 'A'].includes(el.tagName)
          && el.textContent.trim().toUpperCase().startsWith(text)) return el;
    }
    return null;
  };
  const el = walk(document);
  if (el) el.click();
  return Boolean(el);
}
"""


def wait_for(url: str, timeout: float = 60) -> None:
    end = time.time() + timeout
    while time.time() < end:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"{url} did not answer within {timeout:.0f} s")


class DevTools:
    """The few DevTools calls needed: navigate, evaluate, capture."""

    def __init__(self, socket) -> None:  # a websockets client connection
        self.socket, self.next_id = socket, 0

    async def call(self, method: str, **params) -> dict:
        self.next_id += 1
        await self.socket.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(await self.socket.recv())
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})


async def capture(
    devtools_port: int, base: str, out_dir: Path, settle: float, tags: str, columns: str
) -> list[Path]:
    import websockets

    with urllib.request.urlopen(f"http://127.0.0.1:{devtools_port}/json") as response:
        page = next(t for t in json.load(response) if t["type"] == "page")
    written = []
    async with websockets.connect(page["webSocketDebuggerUrl"], max_size=2**26) as socket:
        tools = DevTools(socket)
        await tools.call("Emulation.setDeviceMetricsOverride", width=1400, height=900,
                         deviceScaleFactor=1, mobile=False)  # fmt: skip
        for name, fragment, click in VIEWS:
            await tools.call("Page.navigate", url="about:blank")
            if fragment.endswith("tagFilter="):
                fragment += urllib.parse.quote(tags, safe="")
            await tools.call("Page.navigate", url=f"{base}/{fragment}")
            await asyncio.sleep(settle)
            if fragment == "#hparams":
                expression = f"({SHOW_COLUMNS_JS})({json.dumps(columns)})"
                await tools.call("Runtime.evaluate", expression=expression)
                await asyncio.sleep(2)
            if click:
                expression = f"({CLICK_TEXT_JS})({json.dumps(click)})"
                found = await tools.call("Runtime.evaluate", expression=expression)
                if not found.get("result", {}).get("value"):
                    raise RuntimeError(f"{name}: no element with text {click!r}")
                await asyncio.sleep(settle)
            shot = await tools.call("Page.captureScreenshot", format="png")
            path = out_dir / name
            path.write_bytes(small_png(base64.b64decode(shot["data"])))
            written.append(path)
    return written


def small_png(data: bytes) -> bytes:
    """A 256-colour PNG: a third of the size, indistinguishable for a UI screenshot."""
    from PIL import Image

    image = Image.open(io.BytesIO(data)).convert("RGB").quantize(256)
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    return out.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("logdir", type=Path)
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--port", type=int, default=6006)
    parser.add_argument("--devtools-port", type=int, default=9222)
    parser.add_argument("--settle", type=float, default=8.0, help="seconds for a view to draw")
    parser.add_argument("--tags", default="^(loss/|metrics/classifier_fd$)", help="SCALARS filter")
    parser.add_argument(
        "--columns",
        default="^(model\\.optimizer_d\\.lr|best/|final/metrics/classifier_fd|final/loss/|final/kimg)",
        help="HPARAMS columns to show (regex over hyperparameter and metric names)",
    )
    args = parser.parse_args()
    args.out_dir.mkdir(parents=True, exist_ok=True)
    base = f"http://127.0.0.1:{args.port}"
    board = subprocess.Popen(
        ["tensorboard", "--logdir", str(args.logdir), "--host", "127.0.0.1", "--port",
         str(args.port), "--reload_interval", "0"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    profile = tempfile.mkdtemp(prefix="chromium-")
    browser = None
    try:
        wait_for(f"{base}/data/runs")
        browser = subprocess.Popen(
            [shutil.which("chromium") or "chromium", "--headless", "--no-sandbox",
             "--disable-gpu", f"--remote-debugging-port={args.devtools_port}",
             f"--user-data-dir={profile}", "--window-size=1400,900", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        wait_for(f"http://127.0.0.1:{args.devtools_port}/json/version")
        shots = capture(
            args.devtools_port, base, args.out_dir, args.settle, args.tags, args.columns
        )
        for path in asyncio.run(shots):
            print(f"wrote {path} ({path.stat().st_size // 1024} KiB)")
    finally:
        for process in (browser, board):
            if process is not None:
                process.terminate()
                process.wait(timeout=30)
        shutil.rmtree(profile, ignore_errors=True)


if __name__ == "__main__":
    main()
