"""`report.html` opens in a real browser (headless Debian Chromium via Playwright): the
metric table renders, every plot and GIF decodes, and the videos load."""

import pytest

from wmkit.core.testing.browser import CHROMIUM, CHROMIUM_FLAGS
from wmkit.eval.report import write_report
from wmkit.eval.rollout import evaluate_rollouts

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian chromium not installed")


def test_report_html_in_headless_chromium(squares, oracle, tmp_path):
    from playwright.sync_api import sync_playwright

    frames, actions, spec = squares
    batches = [{"frames": frames[:4], "actions": actions[:4]}]
    ev = evaluate_rollouts(oracle(spec), batches, context=2, horizon=5, keep_videos=2)
    files = write_report(ev, tmp_path / "report", info={"model": "scripted oracle"})
    html = files["html"] if "html" in files else tmp_path / "report" / "report.html"

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS, headless=True)
        page = browser.new_page(viewport={"width": 1100, "height": 900})
        page.set_default_timeout(30000)
        page.goto(html.resolve().as_uri())
        rows = page.locator("#metrics tbody tr")
        assert rows.count() == 2  # world model, copy last frame
        assert "copy last frame" in page.text_content("#metrics")
        images = page.locator("img")
        assert images.count() >= 4  # two plots + one GIF per video
        page.wait_for_function("[...document.images].every(i => i.complete && i.naturalWidth > 0)")
        videos = page.locator("video")
        assert videos.count() == 2
        page.wait_for_function(
            "[...document.querySelectorAll('video')].every(v => v.readyState >= 1 && !v.error)"
        )
        page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
        browser.close()
    assert (tmp_path / "report.png").stat().st_size > 10_000
