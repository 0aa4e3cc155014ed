"""Headless Chromium for the browser tests (the report page, ``wmkit play``): the Debian
``chromium`` the CI installs, and the flags that keep it quiet and offline."""

from __future__ import annotations

import shutil

__all__ = ["CHROMIUM", "CHROMIUM_FLAGS"]

#: Path of the system Chromium, ``None`` when it is not installed (the tests then skip).
CHROMIUM: str | None = shutil.which("chromium") or shutil.which("chromium-browser")

#: Launch flags: headless, no sandbox or GPU, and no network traffic of its own.
CHROMIUM_FLAGS: list[str] = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
