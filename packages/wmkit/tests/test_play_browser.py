"""`wmkit play` in a real browser: headless Chromium (Debian's) driven by Playwright, on a
scripted world and on a converted DIAMOND agent."""

import asyncio
import contextlib
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from aiohttp import web

from wmkit.apps.play.cli import _parser, build_session
from wmkit.apps.play.server import create_app
from wmkit.apps.play.session import PlaySession
from wmkit.core import ActionSpec
from wmkit.core.cli import main as wmkit_main
from wmkit.core.data.envs.atari import rom_available
from wmkit.core.testing import needs_parity, parity_dir
from wmkit.core.testing.browser import CHROMIUM, CHROMIUM_FLAGS

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian chromium not installed")
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
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS, headless=True)
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
        # a per-frame model: no lag, the latency is the step time (and no latent-step line)
        assert page.text_content("#lag") == "0" and float(page.text_content("#latency")) >= 0
        assert not page.is_visible("#latent-step")
        step = int(page.text_content("#t"))
        page.wait_for_function(f"parseInt(document.getElementById('t').textContent) > {step}")
        page.screenshot(path=str(tmp_path / "play.png"))
        browser.close()


def test_the_page_passes_its_token_on_and_shows_the_recording_limit(world, context, tmp_path):
    from playwright.sync_api import sync_playwright

    session = PlaySession(world, context=context, record_dir=tmp_path, max_record_seconds=0.5)
    app = create_app(session, fps=20, host="0.0.0.0", token="s3cret")
    with _serve(app) as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS, headless=True)
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
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS, headless=True)
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


PARITY = parity_dir("diamond")
AGENT = PARITY / "atari" / "agent.pt"


def _synthetic_dataset(root: Path) -> Path:
    from wmkit.core.data.episode_store import EpisodeWriter

    rng = np.random.default_rng(0)
    writer = EpisodeWriter(root, action_spec=ActionSpec.discrete(9), fps=15, env="synthetic")
    for _ in range(3):
        frames = rng.integers(0, 256, (8, 64, 64, 3), dtype=np.uint8)
        writer.add_episode(frames, rng.integers(0, 9, 8), np.zeros(8), np.zeros(8, bool))
    writer.close()
    return root


class _Logged:
    """The policy, recording what it returned."""

    def __init__(self, policy) -> None:
        self.policy, self.returned = policy, []
        self.num_actions = policy.num_actions

    def reset(self) -> None:
        self.policy.reset()

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        out = self.policy(obs)
        self.returned.append(int(out[0]))
        return out


@needs_parity("diamond", "atari", "agent.pt")
def test_converted_diamond_agent_drives_then_the_person(tmp_path):
    """``wmkit convert diamond`` on the parity fixture's ``agent.pt`` (64x64 frames, 9 actions,
    random weights), then ``wmkit play --world DIR/world --policy DIR/policy``: the agent
    drives (each applied action is the greedy policy's on the frame on screen), Tab hands
    control to the person, whose held key reaches the world model. Context frames come
    from MsPacman (``--env atari --game MsPacman``) when ale-py has its ROM, else from a
    small synthetic dataset (``--data``)."""
    from playwright.sync_api import sync_playwright

    torch.set_num_threads(1)
    out = tmp_path / "mspacman"
    assert wmkit_main(["convert", "diamond", str(AGENT), "--out", str(out)]) == 0
    args = ["--world", str(out / "world"), "--policy", str(out / "policy"), "--greedy",
            "--context", "4", "--record-dir", str(tmp_path / "rec")]  # fmt: skip
    if rom_available("MsPacman"):
        args += ["--env", "atari", "--game", "MsPacman"]
    else:
        args += ["--data", str(_synthetic_dataset(tmp_path / "data"))]
    session, bindings = build_session(_parser().parse_args(args))
    assert session.driver == "agent" and session.source == "model"
    policy = session.policy = _Logged(session.policy)
    world_step, applied = session.world.step, []

    def step(state, action, generator=None):
        applied.append((session.driver, int(action[0])))
        return world_step(state, action, generator)

    session.world.step = step
    keys = {
        k: int(v) for k, v in bindings.components[0].keys.items() if len(k) == 1 or "Arrow" in k
    }

    start = time.monotonic()
    with _serve(create_app(session, bindings, fps=10)) as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS, headless=True)
        page = browser.new_page()
        page.set_default_timeout(20000)
        page.goto(url)
        page.wait_for_function("document.getElementById('driver').textContent === 'agent'")
        page.click("#screen")
        page.wait_for_function("parseInt(document.getElementById('t').textContent) >= 3")
        by_agent = [a for d, a in applied if d == "agent"]
        assert len(by_agent) >= 3
        # greedy: each applied action is the one the policy returned on the frame on screen
        assert by_agent == policy.returned[: len(by_agent)]
        assert session.world.rew_end_model is not None and session.last_reward in (-1, 0, 1)
        # the person takes over and holds a key whose action the agent was not choosing
        key, action = next((k, a) for k, a in keys.items() if a not in by_agent[-3:])
        page.keyboard.press("Tab")
        page.wait_for_function("document.getElementById('driver').textContent === 'person'")
        page.keyboard.down(key)
        deadline = time.monotonic() + 15
        while ("person", action) not in applied and time.monotonic() < deadline:
            page.wait_for_timeout(100)
        page.keyboard.up(key)
        assert ("person", action) in applied
        page.screenshot(path=str(tmp_path / "mspacman.png"))
        browser.close()
    if session.env is not None:
        session.env.close()
    assert time.monotonic() - start < 60
