"""Screenshot TensorBoard's scalars, images and hparams pages for a runs folder, without a desktop.

Starts TensorBoard on localhost (a free port), waits until it serves, and takes headless Chromium screenshots
(Debian's ``chromium`` package: ``apt-get install chromium``) of the scalars, images and hparams dashboards, then stops
TensorBoard.

    python scripts/tensorboard_screenshot.py runs/sourdough --output docs/
    python scripts/tensorboard_screenshot.py runs/sourdough --pages hparams --output /tmp
"""

from __future__ import annotations

import argparse
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--hide-scrollbars",
)

#: The dashboards: URL fragment and window size. The HParams table is wide: the ticked hparams come first (those
#: that differ between runs in front), then the final metrics.
PAGES = {
    "scalars": ("#scalars&tagFilter=%5E(train_loss%7Cval_loss%7Coptimality_gap%7Cval_r2%7Clr-SGD)%24", (1400, 1000)),
    "images": ("#images", (1400, 1000)),
    "hparams": ("#hparams", (2100, 420)),
}


def free_port() -> int:
    """Return a TCP port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until_serving(url: str, timeout: float = 60.0) -> None:
    """Poll ``url`` until it answers 200, or raise after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"TensorBoard did not answer at {url} within {timeout:.0f} s")


def screenshot(chromium: str, url: str, path: Path, width: int, height: int, budget_ms: int) -> None:
    """Render ``url`` in a fresh headless Chromium profile and save a PNG to ``path``."""
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        command = [
            chromium,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={profile}",
            f"--window-size={width},{height}",
            f"--virtual-time-budget={budget_ms}",
            f"--screenshot={path}",
            url,
        ]
        subprocess.run(command, check=True, capture_output=True, timeout=180)
    if not path.is_file() or path.stat().st_size == 0:
        raise RuntimeError(f"Chromium wrote no screenshot to {path}")


def main() -> None:
    """Start TensorBoard, take the screenshots, stop TensorBoard."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("logdir", help="a runs folder, e.g. runs/sourdough")
    parser.add_argument("--output", default="docs", help="folder for tensorboard_<page>.png")
    parser.add_argument("--width", type=int, help="window width in pixels (default: the page's own)")
    parser.add_argument("--height", type=int, help="window height in pixels (default: the page's own)")
    parser.add_argument("--budget-ms", type=int, default=15000, help="virtual time for the page to render")
    parser.add_argument("--pages", nargs="+", choices=sorted(PAGES), default=list(PAGES), help="dashboards to shoot")
    args = parser.parse_args()
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        sys.exit("chromium not found: apt-get install chromium")
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "tensorboard.main", "--logdir", args.logdir, "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        base = f"http://127.0.0.1:{port}/"
        wait_until_serving(base)
        for page in args.pages:
            fragment, (width, height) = PAGES[page]
            path = output / f"tensorboard_{page}.png"
            size = (args.width or width, args.height or height)
            screenshot(chromium, base + fragment, path.resolve(), *size, args.budget_ms)
            print(f"wrote {path}")
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
