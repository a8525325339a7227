"""Render a page in headless Chromium (the system's package): a screenshot PNG, or the DOM after layout.

Only the standard library: Chromium's own ``--screenshot`` and ``--dump-dom`` switches. Each call gets a fresh
profile and no network services, so nothing but the page's own files is read.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

__all__ = ["CHROMIUM_CANDIDATES", "find_chromium", "dump_dom", "screenshot"]

CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
_SWITCHES = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--hide-scrollbars", "--force-device-scale-factor=1",
    "--mute-audio", "--allow-file-access-from-files",
)


def find_chromium() -> str | None:
    """The Chromium binary: ``$CHROMIUM`` when set, else the first of :data:`CHROMIUM_CANDIDATES` that exists."""
    configured = os.environ.get("CHROMIUM")
    for candidate in ([configured] if configured else []) + list(CHROMIUM_CANDIDATES):
        if candidate and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


def _run(page: str | Path, switches: list[str], timeout: float) -> subprocess.CompletedProcess:
    chromium = find_chromium()
    if chromium is None:
        raise FileNotFoundError(f"no Chromium found (looked for $CHROMIUM and {', '.join(CHROMIUM_CANDIDATES)})")
    profile = tempfile.mkdtemp(prefix="svit-internvl-chromium-")
    try:
        url = Path(page).resolve().as_uri()
        command = [chromium, *_SWITCHES, f"--user-data-dir={profile}", *switches, url]
        result = subprocess.run(command, capture_output=True, timeout=timeout)
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    if result.returncode != 0:
        raise RuntimeError(f"{chromium} exited with {result.returncode}: {result.stderr.decode(errors='replace')[-2000:]}")
    return result


def screenshot(page: str | Path, png: str | Path, width: int, height: int, timeout: float = 120) -> Path:
    """A ``width`` x ``height`` screenshot of ``page`` (the top of it) written to ``png``."""
    png = Path(png).resolve()
    png.unlink(missing_ok=True)
    _run(page, [f"--screenshot={png}", f"--window-size={width},{height}"], timeout)
    if not png.exists():
        raise RuntimeError(f"Chromium wrote no screenshot for {page}")
    return png


def dump_dom(page: str | Path, timeout: float = 120) -> str:
    """The page's DOM as Chromium serialises it after loading."""
    return _run(page, ["--dump-dom"], timeout).stdout.decode("utf-8")
