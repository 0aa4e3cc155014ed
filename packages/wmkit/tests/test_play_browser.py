"""`wmkit play` in a real browser: headless Chromium (Debian's) driven by Playwright."""

import asyncio
import contextlib
import shutil
import threading

import pytest
from aiohttp import web

from wmkit.apps.play.server import create_app
from wmkit.apps.play.session import PlaySession

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian chromium not installed")
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
# The square's left edge in the frame shown; NaN while the newest frame is still decoding
# (every frame replaces the image's blob URL, and an undecoded image draws nothing), so that
# comparisons with it wait instead of reading an empty canvas.
SQUARE_X = """() => {
  const img = document.getElementById("screen");
  if (!img.complete || !img.naturalWidth) return NaN;
  const c = document.createElement("canvas"); c.width = 16; c.height = 16;
  const ctx = c.getContext("2d"); ctx.drawImage(img, 0, 0, 16, 16);
  const d = ctx.getImageData(0, 0, 16, 16).data;
  let best = NaN;
  for (let y = 0; y < 16; y++) for (let x = 0; x < 16; x++)
    if (d[(y * 16 + x) * 4] > 100) best = Number.isNaN(best) ? x : Math.min(best, x);
  return best;
}"""


def _square_x(page) -> int:
    """The square's left edge once a decoded frame shows it."""
    found = page.wait_for_function(f"(() => {{ const x = ({SQUARE_X})(); return x + 1; }})")
    return int(found.json_value()) - 1


@contextlib.contextmanager
def _serve(app):
    """Serve ``app`` on 127.0.0.1 from a thread; yields its base URL."""
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app)
    loop.run_until_complete(runner.setup())
    site = web.TCPSite(runner, "127.0.0.1", 0)
    loop.run_until_complete(site.start())
    port = runner.addresses[0][1]
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


@pytest.fixture
def server(world, context, tmp_path):
    session = PlaySession(world, context=context, record_dir=tmp_path)
    with _serve(create_app(session, fps=20, title="scripted squares")) as url:
        yield url


def test_play_in_headless_chromium(server, tmp_path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        page = browser.new_page()
        page.set_default_timeout(30000)
        page.goto(server)
        page.wait_for_function("document.getElementById('screen').src.startsWith('blob:')")
        page.wait_for_function("parseFloat(document.getElementById('fps').textContent) > 0")
        assert page.text_content("#title") == "scripted squares"
        assert "ArrowRight: right" in page.text_content("#help")
        page.click("#screen")
        x0 = _square_x(page)
        page.keyboard.down("ArrowRight")
        page.wait_for_function(f"({SQUARE_X})() > {x0}", timeout=20000)
        page.keyboard.up("ArrowRight")
        x1 = _square_x(page)
        page.keyboard.down("ArrowLeft")
        page.wait_for_function(f"({SQUARE_X})() < {x1}", timeout=20000)
        page.keyboard.up("ArrowLeft")
        fps = float(page.text_content("#fps"))
        shown = float(page.text_content("#client-fps"))
        assert fps > 2 and shown > 2
        step = int(page.text_content("#t"))
        page.wait_for_function(f"parseInt(document.getElementById('t').textContent) > {step}")
        page.screenshot(path=str(tmp_path / "play.png"))
        browser.close()


def test_the_page_passes_its_token_on_and_shows_the_recording_limit(world, context, tmp_path):
    from playwright.sync_api import sync_playwright

    session = PlaySession(world, context=context, record_dir=tmp_path, max_record_seconds=0.5)
    app = create_app(session, fps=20, host="0.0.0.0", token="s3cret")
    with _serve(app) as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        page = browser.new_page()
        page.set_default_timeout(30000)
        page.goto(url)
        assert "token" in page.text_content("body")  # refused without it
        page.goto(f"{url}/?token=s3cret")
        page.wait_for_function("document.getElementById('screen').src.startsWith('blob:')")
        page.click("#record")
        page.wait_for_function("document.getElementById('messages').textContent.includes('limit')")
        assert page.text_content("#record") == "Record"
        browser.close()


class _RightPolicy:
    """An agent that always moves the square right."""

    def reset(self) -> None:
        pass

    def __call__(self, obs):
        import numpy as np

        return np.full(obs.shape[0], 4, np.int64)


def test_the_agent_drives_then_tab_hands_control_to_the_person(world, context, tmp_path):
    session = PlaySession(world, context=context, record_dir=tmp_path, policy=_RightPolicy())
    from playwright.sync_api import sync_playwright

    with _serve(create_app(session, fps=20)) as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        page = browser.new_page()
        page.set_default_timeout(30000)
        page.goto(url)
        page.wait_for_function("document.getElementById('driver').textContent === 'agent'")
        assert "Tab: hand control" in page.text_content("#help")
        for driver in ("person", "agent"):  # the button hands over too
            page.click("#driver-toggle")
            page.wait_for_function(f"document.getElementById('driver').textContent === '{driver}'")
        page.click("#screen")
        # the context shows the square at x = 6; with no key held the agent pushes it to the
        # right edge (12)
        page.wait_for_function(f"({SQUARE_X})() === 12", timeout=20000)
        page.keyboard.press("Tab")
        page.wait_for_function("document.getElementById('driver').textContent === 'person'")
        x1 = _square_x(page)
        page.keyboard.down("ArrowLeft")
        page.wait_for_function(f"({SQUARE_X})() < {x1}", timeout=20000)
        page.keyboard.up("ArrowLeft")
        page.keyboard.press("Tab")
        page.wait_for_function("document.getElementById('driver').textContent === 'agent'")
        browser.close()
