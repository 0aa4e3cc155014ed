"""`wmkit quickstart --tiny` end to end, killed mid-training and resumed."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from wmkit.apps.quickstart import PRESETS, QuickstartPlan, run_quickstart
from wmkit.core import load_pretrained


def test_tiny_quickstart_survives_sigkill_and_resumes(tmp_path):
    out, data = tmp_path / "qs", tmp_path / "data"
    args = ["--tiny", "--out", str(out), "--data-dir", str(data)]
    code = "import sys; from wmkit.core.cli import main; sys.exit(main(sys.argv[1:]))"
    proc = subprocess.Popen(
        [sys.executable, "-c", code, "quickstart", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    ckpt = out / "checkpoints" / "world" / "last.ckpt"
    deadline = time.time() + 240
    while not ckpt.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    killed = proc.poll() is None
    if killed:
        proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    state = json.loads((out / "quickstart_state.json").read_text())
    assert state["done"].get("tokenizer") and (killed is False or "world" not in state["done"])

    plan = QuickstartPlan(out=out, data_dir=data).scaled(**PRESETS["tiny"])
    result = run_quickstart(plan, log=lambda _: None)
    assert set(json.loads((out / "quickstart_state.json").read_text())["done"]) == {
        "record",
        "tokenizer",
        "world",
        "evaluate",
    }
    for name in ("report.md", "report.html"):
        assert (result.report_dir / name).is_file()
    assert list(result.report_dir.glob("*.png")) and list((result.report_dir / "videos").iterdir())
    tokenizer = load_pretrained(result.tokenizer_dir)
    world = load_pretrained(result.world_dir)
    # the default: a per-frame continuous tokenizer, a diffusion world model on its latents
    assert type(world).__name__ == "DiffusionWorldModel" and world.action_spec.n == 17
    assert tokenizer.kind == "continuous" and tokenizer.temporal_compression == 1
    assert world.tokenizer is not None and world.anchored_decoding and world.sampling.carry_history
    assert world.reward_head is not None and world.done_head is not None
    scale = json.loads((out / "quickstart_state.json").read_text())["done"]["tokenizer"]
    assert world.latent_scale == scale["latent_scale"] > 0  # measured, then used
    manifest = json.loads((plan.dataset / "manifest.json").read_text())
    assert manifest["policy"]["name"] == plan.policy == "explore"  # recorded as planned
    image = [f"{who}{m}" for who in ("", "copy_last_", "reconstruction_")
             for m in ("psnr", "psnr_frame_mean", "ssim", "lpips")]  # fmt: skip
    keys = (*image, "delta_psnr", "reward_mse", "reward_mse_zero", "reward_mse_one_step")
    for key in (*keys, "reward_mse_zero_one_step"):
        assert isinstance(result.metrics[key], float), key
    assert "copy last frame" in result.metrics["table"] and "LPIPS" in result.metrics["table"]
    beats = all(
        result.metrics[m] < result.metrics[f"copy_last_{m}"]
        if m == "lpips"
        else result.metrics[m] > result.metrics[f"copy_last_{m}"]
        for m in ("psnr", "psnr_frame_mean", "ssim", "lpips")
    )
    assert result.metrics["beats_copy_last"] is beats
    assert result.metrics["verdict"].startswith(
        "world model beats" if beats else "world model does NOT"
    )
    report = (result.report_dir / "report.md").read_text()
    assert "Rewards and terminations" in report and "one step from real context" in report
    for stage in ("tokenizer", "world"):
        assert result.configs[stage].is_file()

    again = run_quickstart(plan, log=lambda _: None)  # everything done: nothing reruns
    assert again.metrics == result.metrics

    with pytest.raises(ValueError, match="other settings"):
        run_quickstart(plan.scaled(world_steps=99), log=lambda _: None)


def test_tiny_quickstart_with_the_autoregressive_world_model(tmp_path):
    plan = QuickstartPlan(out=tmp_path / "qs", data_dir=tmp_path / "data", world="ar")
    result = run_quickstart(plan.scaled(**PRESETS["tiny"]), log=lambda _: None)
    tokenizer = load_pretrained(result.tokenizer_dir)
    world = load_pretrained(result.world_dir)
    assert tokenizer.kind == "discrete" and type(world).__name__ == "ARWorldModel"
    assert tokenizer.future_residual and world.compressive  # the iVideoGPT-style layout
    assert (result.report_dir / "report.html").is_file()
    assert isinstance(result.metrics["delta_psnr"], float)
    assert isinstance(result.metrics["reconstruction_psnr"], float)
    assert isinstance(result.metrics["reward_mse"], float)  # the slot's reward head


def test_world_size_defaults_follow_the_family_and_device():
    plan = QuickstartPlan()
    assert plan.world == "diffusion" and plan.world_model_size == "small"
    gpu = plan.scaled(**PRESETS["gpu"])
    assert gpu.world_model_size == "base" and gpu.scaled(world="ar").world_model_size == "300M"
    assert gpu.scaled(world_size="large").world_model_size == "large"
    # the tokenizer the diffusion world model reads: per-frame, 2x down, MSE-trained
    tok = plan.tokenizer_config()["model"]["init_args"]
    assert tok["mse_weight"] == 1.0 and tok["tokenizer"]["init_args"]["spatial_compression"] == 2
    world = plan.world_config({"type": "discrete", "n": 17}, latent_scale=0.5)
    args = world["model"]["init_args"]["model"]["init_args"]
    assert args["latent_scale"] == 0.5 and args["image_size"] == 16 and args["anchored_decoding"]
