"""`tools/bench_quickstart.py` and `wmkit quickstart --tokenizer vidtok-4x` end to end: the
tiny preset's vidtok-4x row (a causal 4x-temporal VidTok trained in the loop, the diffusion
world model in 4-frame latent steps on its latents) with its play frames/s, lag and latency;
the kept run played over the play server; the best-per-measure line of several rows."""

import asyncio
import contextlib
import importlib.util
import io
import json
import sys
from pathlib import Path

import pytest
import torch
import yaml
from aiohttp.test_utils import TestClient, TestServer

from wmkit.apps.play.cli import _dataset_context
from wmkit.apps.play.server import create_app
from wmkit.apps.play.session import PlaySession
from wmkit.core import ActionSpec, load_pretrained, to_float_video
from wmkit.core.testing import ToyLatentStepWorldModel, ToyWorldModel, moving_squares

SCRIPT = Path(__file__).resolve().parents[3] / "tools" / "bench_quickstart.py"


@pytest.fixture(scope="module")
def tool():
    spec = importlib.util.spec_from_file_location("bench_quickstart", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_quickstart"] = module
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop("bench_quickstart", None)


@pytest.fixture(scope="module")
def bench(tool, tmp_path_factory, tiny_crafter):
    """The tiny vidtok-4x row, its run kept: ``(printed, report, run directory)``."""
    root = tmp_path_factory.mktemp("bench")
    out = root / "bench.json"
    argv = ["--preset", "tiny", "--tokenizer", "vidtok-4x", "--play-frames", "8", "--data-dir",
            str(tiny_crafter), "--keep", str(root / "runs"), "--out", str(out)]  # fmt: skip
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert tool.main(argv) == 0
    return printed.getvalue(), json.loads(out.read_text()), root / "runs" / "vidtok-4x-s0"


@pytest.mark.slow
def test_the_vidtok_4x_row_has_every_column_and_the_latency_of_its_lag(tool, bench):
    printed, report, _ = bench
    assert "| " + " | ".join(tool.HEAD) + " |" in printed
    rows = [line for line in printed.splitlines() if line.startswith("| vidtok-4x")]
    assert len(rows) == 1 and len(rows[0].split(" | ")) == len(tool.HEAD)
    assert "best:" not in printed  # one tokenizer: nothing to compare
    (row,) = report["runs"]
    assert row["tokenizer"] == "vidtok-4x" and row["play_lag"] == 3  # k - 1 frames behind
    # 3 frame periods of at least 1/15 s (wmkit play's default rate) plus the step time
    assert row["play_latency_ms"] >= 3 * 1000 / 15 + row["play_step_ms"] - 1e-6
    assert row["play_fps"] > 0 and row["training_s"] > 0
    for key in ("psnr", "psnr_frame_mean", "ssim", "lpips", "delta_psnr", "reconstruction_psnr"):
        assert isinstance(row[key], float), key
    assert row["reward_mse"] is None  # no reward head on latent steps of several frames


@pytest.mark.slow
def test_the_vidtok_4x_quickstart_plays_through_the_play_server(bench):
    _, _, run = bench
    tokenizer, world = load_pretrained(run / "tokenizer"), load_pretrained(run / "world")
    assert type(world).__name__ == "DiffusionWorldModel" and world.frames_per_step == 4
    assert tokenizer.temporal_compression == 4 and tokenizer.temporal_upsample == "nearest"
    assert callable(getattr(world.tokenizer, "decode_next", None))  # streamed decoding
    config = yaml.safe_load((run / "configs" / "world.yaml").read_text())
    assert config["data"]["init_args"]["clip_length"] == 9
    assert (run / "report" / "report.html").is_file()
    data = Path(json.loads((run / "quickstart_state.json").read_text())["plan"]["data_dir"])
    session = PlaySession(world, context=_dataset_context(data, 2, 0))

    async def play():
        app = create_app(session, fps=40)
        async with TestClient(TestServer(app, host="127.0.0.1")) as client:
            assert (await (await client.get("/config")).json())["frames_per_step"] == 4
            ws = await client.ws_connect("/ws")
            lags, frames = [], 0
            async with asyncio.timeout(60):
                while len(lags) < 7:
                    msg = await ws.receive()
                    if msg.type.name == "BINARY":
                        frames += 1
                    elif json.loads(msg.data)["type"] == "status":
                        status = json.loads(msg.data)
                        lags.append(status["lag"])
            await ws.close()
        assert lags[:4] == [0, 1, 2, 3] and set(lags[4:]) == {3} and frames == 7
        assert status["latency_ms"] > status["step_ms"] > 0

    asyncio.run(play())


def test_several_tokenizers_get_a_line_naming_the_best_on_each_measure(tool, capsys):
    def row(name, repeat, psnr, lpips, latency, lag):
        return {
            "tokenizer": name, "repeat": repeat, "total_s": 10.0, "training_s": 8.0 + lag,
            "steps_s": {"tokenizer": 4.0, "world": 4.0 + lag}, "psnr": psnr,
            "copy_last_psnr": 20.0, "reconstruction_psnr": None, "psnr_frame_mean": psnr,
            "copy_last_psnr_frame_mean": 20.0, "ssim": 0.8, "copy_last_ssim": 0.8,
            "lpips": lpips, "copy_last_lpips": 0.1, "beats_copy_last": False, "delta_psnr": 0.5,
            "play_fps": 30.0, "play_lag": lag, "play_step_ms": 10.0,
            "play_latency_ms": latency,
        }  # fmt: skip

    rows = [
        row("per-frame", 0, 21.0, 0.02, 10.0, 0), row("vidtok-4x", 0, 22.0, 0.03, 210.0, 3),
        row("per-frame", 1, 21.0, 0.02, 10.0, 0), row("vidtok-4x", 1, 19.0, 0.03, 210.0, 3),
    ]  # fmt: skip
    best = tool.winners(rows)
    assert best["PSNR"] == "per-frame"  # means over repeats: 21.0 vs 20.5
    assert best["LPIPS"] == best["play latency"] == best["training time"] == "per-frame"
    assert best["SSIM"] == best["play frames/s"] == "per-frame = vidtok-4x"  # a tie
    tool.print_table(rows, "title")
    printed = capsys.readouterr().out
    assert "best: PSNR: per-frame;" in printed and "play latency: per-frame" in printed
    assert printed.count("| vidtok-4x |") == 2 and "| – |" in printed  # no reconstruction
    with pytest.raises(Exception, match="comma-separated"):
        tool.tokenizers("per-frame,vidtok-8x")
    assert tool.tokenizers("per-frame, vidtok-4x") == ["per-frame", "vidtok-4x"]


def test_play_timing_counts_the_lag_of_a_latent_step_model(tool):
    spec = ActionSpec.discrete(5)
    context = to_float_video(moving_squares(1, 2, 16).frames)  # [1, 2, 3, 16, 16]
    torch.manual_seed(0)
    latent = tool.play_timing(ToyLatentStepWorldModel(spec, 4, hidden=4), lambda: context, frames=8)
    frame = tool.play_timing(ToyWorldModel(spec, hidden=4), lambda: context, frames=8)
    assert latent["play_lag"] == 3 and frame["play_lag"] == 0
    assert latent["play_latency_ms"] >= 3 * 1000 / 15 + latent["play_step_ms"] - 1e-6
    assert frame["play_latency_ms"] == pytest.approx(frame["play_step_ms"])
