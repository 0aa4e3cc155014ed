"""`wmkit quickstart --tiny` end to end, killed while training the world model and resumed to
the weights of an uninterrupted run."""

import json
import os
import signal
import subprocess
import sys
import time
import warnings

import pytest
import torch
from safetensors.torch import load_file

from wmkit.apps.quickstart import PRESETS, QuickstartPlan, run_quickstart
from wmkit.apps.quickstart.plan import EPOCH_BATCHES, checkpoint_interval
from wmkit.core import GatedWorldModel, load_pretrained, run_stage


def _kill_during_world_training(out, data):
    """Run ``wmkit quickstart --tiny`` in its own process group and SIGKILL the group as soon
    as the world model stage has written a checkpoint; returns that checkpoint's step."""
    args = ["--tiny", "--out", str(out), "--data-dir", str(data)]
    code = "import sys; from wmkit.core.cli import main; sys.exit(main(sys.argv[1:]))"
    proc = subprocess.Popen(
        [sys.executable, "-c", code, "quickstart", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        start_new_session=True,
    )
    ckpt = out / "checkpoints" / "world" / "last.ckpt"
    deadline = time.monotonic() + 300
    try:
        while not ckpt.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert proc.poll() is None, f"the quickstart ended (code {proc.returncode}) before {ckpt}"
        assert ckpt.exists(), f"no {ckpt} after 300 s"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(30)
    return torch.load(ckpt, map_location="cpu", weights_only=True)["global_step"]


def test_tiny_quickstart_killed_while_training_the_world_model_resumes_to_the_same_weights(
    tmp_path, tiny_crafter
):
    out, data = tmp_path / "qs", tiny_crafter
    plan = QuickstartPlan(out=out, data_dir=data).scaled(**PRESETS["tiny"])
    step = _kill_during_world_training(out, data)
    assert 0 < step < plan.world_steps  # killed while the world model was training
    state = json.loads((out / "quickstart_state.json").read_text())
    assert set(state["done"]) == {"record", "tokenizer"}
    assert not (out / "world").exists()

    logs: list[str] = []
    result = run_quickstart(plan, log=logs.append)
    assert any(f"resuming at step {step} from" in line for line in logs), logs
    assert set(json.loads((out / "quickstart_state.json").read_text())["done"]) == {
        "record",
        "tokenizer",
        "world",
        "gate",
        "evaluate",
    }

    # the same stage uninterrupted, from the same tokenizer: the same weights, bit for bit
    (out / "checkpoints" / "world").rename(tmp_path / "resumed_checkpoints")
    torch.set_num_threads(plan.threads)  # as the quickstart trains
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        whole = run_stage(None, None, ["fit", "-c", str(result.configs["world"])],
                          save_config_callback=None)  # fmt: skip
    whole.model.model.save_pretrained(tmp_path / "whole")
    resumed = load_file(result.world_dir / "model.safetensors")
    uninterrupted = load_file(tmp_path / "whole" / "model.safetensors")
    assert resumed.keys() == uninterrupted.keys()
    for name, tensor in uninterrupted.items():
        assert torch.equal(resumed[name], tensor), name

    for name in ("report.md", "report.html"):
        assert (result.report_dir / name).is_file()
    assert list(result.report_dir.glob("*.png")) and list((result.report_dir / "videos").iterdir())
    tokenizer = load_pretrained(result.tokenizer_dir)
    served = load_pretrained(result.served_dir)
    # the default: a per-frame continuous tokenizer, a diffusion world model on its latents,
    # served through a change gate trained on its rollouts
    assert isinstance(served, GatedWorldModel) and result.served_dir == out / "gated"
    world = load_pretrained(result.world_dir)

    def roll(model):
        torch.manual_seed(0)
        return model.rollout(torch.zeros(1, 2, 3, 32, 32), torch.zeros(1, 2, dtype=torch.long))

    assert torch.equal(roll(served.world).frames, roll(world).frames)  # the trained world model
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
    alone = result.metrics["world_alone"]  # the world model without its gate, beside it
    assert all(isinstance(alone[k], float) for k in ("psnr", "psnr_frame_mean", "ssim", "lpips",
                                                     "delta_psnr"))  # fmt: skip
    assert result.metrics["verdict"].startswith(
        "world model beats" if beats else "world model does NOT"
    )
    report = (result.report_dir / "report.md").read_text()
    assert "Rewards and terminations" in report and "one step from real context" in report
    for stage in ("tokenizer", "world", "gate"):
        assert result.configs[stage].is_file()

    again = run_quickstart(plan, log=lambda _: None)  # everything done: nothing reruns
    assert again.metrics == result.metrics

    with pytest.raises(ValueError, match="other settings"):
        run_quickstart(plan.scaled(world_steps=99), log=lambda _: None)


def test_tiny_quickstart_with_the_autoregressive_world_model(tmp_path, tiny_crafter):
    plan = QuickstartPlan(out=tmp_path / "qs", data_dir=tiny_crafter, world="ar")
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


def test_checkpoints_never_fall_on_an_epoch_end():
    for steps in (5, 12, 600, 1000, 20000, 40000):
        every = checkpoint_interval(steps)
        assert every >= max(1, steps // 10)
        assert all(k % EPOCH_BATCHES for k in range(every, steps + 1, every)), steps


def test_the_vidtok_4x_plan_trains_a_4_frame_latent_step_world_model_on_1_plus_4n_frames():
    plan = QuickstartPlan(tokenizer="vidtok-4x")
    assert plan.frames_per_step == 4 and plan.world_clip == 9  # clip_length 8 raised to 1 + 4n
    assert "tokenizer" not in QuickstartPlan().to_dict()  # old runs' saved settings still match
    assert plan.to_dict()["tokenizer"] == "vidtok-4x"
    tok = plan.tokenizer_config()
    args = tok["model"]["init_args"]["tokenizer"]["init_args"]
    assert args["temporal_compression"] == 4 and args["spatial_compression"] == 4
    assert args["temporal_mixing"] and args["layout"] == {"temporal_upsample": "nearest"}
    assert tok["data"]["init_args"]["clip_length"] == 9
    world = plan.world_config({"type": "discrete", "n": 17}, latent_scale=0.5)
    model = world["model"]["init_args"]["model"]["init_args"]
    assert model["frames_per_step"] == 4 and "heads" not in model
    assert not model["anchored_decoding"] and model["sampling"]["context_window"] == 3
    assert model["channels"] == 16 and model["image_size"] == 8
    net = model["network"]["init_args"]
    assert (net["in_channels"], net["out_channels"], net["patch_size"]) == (32, 16, 1)
    assert world["data"]["init_args"]["clip_length"] == 9
    with pytest.raises(ValueError, match="diffusion world model only"):
        QuickstartPlan(world="ar", tokenizer="vidtok-4x")
    with pytest.raises(ValueError, match="tokenizer must be one of"):
        QuickstartPlan(tokenizer="vidtok-8x")


def test_the_cli_refuses_vidtok_4x_with_the_autoregressive_world_model(tmp_path):
    from wmkit.core.cli import main

    with pytest.raises(SystemExit, match="diffusion world model only"):
        main(["quickstart", "--world", "ar", "--tokenizer", "vidtok-4x", "--out", str(tmp_path)])
