"""The rollout evaluator runs end to end on a trained tiny world model and a scripted oracle,
beside the baselines, and writes every report file; the CLI does the same from directories."""

import json
from dataclasses import replace

import pytest
import torch

from wmkit.core import ActionSpec
from wmkit.core.lpips import LPIPS
from wmkit.core.testing import ToyTokenizer, ToyWorldModel, check_loss_decreases, moving_squares
from wmkit.eval.cli import main
from wmkit.eval.frame_metrics import psnr_from_mse
from wmkit.eval.idm import InverseDynamicsModel, train_idm
from wmkit.eval.report import write_report
from wmkit.eval.rollout import evaluate_rollouts


def _batches(frames, actions, size=4):
    return [
        {"frames": frames[i : i + size], "actions": actions[i : i + size]}
        for i in range(0, len(frames), size)
    ]


def _train_toy(frames, actions, spec, steps=20):
    torch.manual_seed(0)
    model = ToyWorldModel(spec, hidden=16, kernel_size=5)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)

    def loss():
        pred, _ = model(frames[:, :-1], actions[:, :-1])
        return (pred - frames[:, 1:]).pow(2).mean()

    check_loss_decreases(model, loss, steps, factor=1.0, optimizer=opt, eval_seed=None)
    return model.eval()


def test_oracle_beats_copy_last_and_shows_controllability(squares, oracle):
    frames, actions, spec = squares
    ev = evaluate_rollouts(
        oracle(spec), _batches(frames, actions), context=2, horizon=5, num_samples=2
    )
    assert ev.num_clips == 12 and len(ev.per_step["model"]["psnr"]) == 5
    assert ev.overall["model"]["psnr"] > ev.overall["copy_last_frame"]["psnr"] + 10
    assert ev.controllability["delta_psnr"] > 10
    for method, values in ev.overall.items():  # headline PSNR is the PSNR of the mean MSE
        assert values["psnr"] == pytest.approx(float(psnr_from_mse(values["mse"])))
        steps = ev.per_step[method]
        assert steps["psnr"] == pytest.approx(psnr_from_mse(torch.tensor(steps["mse"])).tolist())
    # copy-last repeats the still frames exactly: capped per-frame values inflate its mean
    assert ev.overall["copy_last_frame"]["psnr_frame_mean"] > ev.overall["copy_last_frame"]["psnr"]
    c = ev.controllability
    assert c["delta_psnr"] == pytest.approx(c["psnr_true"] - c["psnr_other"])
    copy = evaluate_rollouts(oracle(spec), _batches(frames, actions), context=2, horizon=5)
    assert copy.overall == ev.overall  # deterministic model: samples agree


def _evaluation(overall):
    from wmkit.eval.rollout import RolloutEvaluation

    return RolloutEvaluation(context=2, horizon=3, num_clips=1, num_samples=1, per_step={},
                             overall=overall, controllability={}, videos={})  # fmt: skip


def test_beats_copy_last_only_when_better_on_all_four_image_measures():
    model = {"psnr": 21.15, "psnr_frame_mean": 26.2, "ssim": 0.83, "lpips": 0.10}
    copy = {"psnr": 20.13, "psnr_frame_mean": 31.2, "ssim": 0.84, "lpips": 0.12}
    ev = _evaluation({"model": model, "copy_last_frame": copy})
    assert ev.comparison() == {"psnr": True, "psnr_frame_mean": False, "ssim": False,
                               "lpips": True}  # fmt: skip
    assert not ev.beats()
    assert ev.verdict() == (
        "world model does NOT beat copy last frame on all image measures: better on PSNR, "
        "LPIPS; worse on PSNR/frame, SSIM"
    )
    better = {"psnr": 22.0, "psnr_frame_mean": 32.0, "ssim": 0.9, "lpips": 0.05}
    ev = _evaluation({"model": better, "copy_last_frame": copy})
    assert ev.beats()
    assert ev.verdict() == "world model beats copy last frame on all 4 image measures"
    no_lpips = {k: v for k, v in better.items() if k != "lpips"}
    ev = _evaluation({"model": no_lpips, "copy_last_frame": copy})
    assert not ev.beats() and ev.verdict().endswith("not measured on LPIPS")
    equal = _evaluation({"model": copy, "copy_last_frame": copy})
    assert not equal.beats()  # a tie is not a win
    with pytest.raises(KeyError, match="no baseline 'tokenizer_recon'"):
        equal.comparison("tokenizer_recon")


def _with_heads(oracle_cls, wrong_rewards: bool = False):
    """The oracle, also predicting moving squares' reward (the square in the top-left quadrant
    after the move) and a termination rule: the square reaching the bottom edge."""

    class WithHeads(oracle_cls):
        def step(self, state, action):
            out = super().step(state, action)
            frame = out.frame
            h = frame.shape[-1]
            on = (frame - frame.amin(dim=(2, 3), keepdim=True)).abs().sum(1) > 1e-3  # [B, H, W]
            ys = torch.where(on.any(2), torch.arange(h), h).amin(1)
            xs = torch.where(on.any(1), torch.arange(h), h).amin(1)
            reward = ((ys < h / 2) & (xs < h / 2)).float()
            done = on[:, -1].any(1).float()
            return replace(out, reward=torch.ones_like(reward) if wrong_rewards else reward,
                           done=done)  # fmt: skip

    return WithHeads


def test_reward_and_termination_predictions_are_scored_against_the_recorded_ones(
    squares, oracle, tmp_path
):
    frames, actions, spec = squares
    eps = moving_squares(num_episodes=12, length=12, size=16, seed=3)
    rewards = torch.from_numpy(eps.rewards)
    dones = torch.zeros_like(rewards)
    dones[:, :-1] = (frames[:, 1:, :, -1].amax(dim=(2, 3)) > frames.amin()).float()
    batches = [
        {**b, "rewards": rewards[i : i + 4], "dones": dones[i : i + 4]}
        for i, b in zip(range(0, 12, 4), _batches(frames, actions))
    ]
    ev = evaluate_rollouts(_with_heads(oracle)(spec), batches, context=2, horizon=5)
    h = ev.heads
    target = rewards[:, 1:6]  # reward t follows action t: steps context - 1 ... of each clip
    assert h["reward_mse"] == 0.0 and h["reward_mse_per_step"] == [0.0] * 5
    assert h["reward_mse_zero"] == pytest.approx(target.square().mean().item())
    assert 0 < target.mean() < 1 and h["done_real_ends"] == dones[:, 1:6].sum().item() > 0
    assert h["done_accuracy"] == 1.0 and h["done_precision"] == h["done_recall"] == 1.0
    wrong = evaluate_rollouts(_with_heads(oracle, True)(spec), batches, context=2, horizon=5)
    assert wrong.heads["reward_mse"] == pytest.approx((1 - target).square().mean().item())
    files = write_report(ev, tmp_path)
    assert "## Rewards and terminations" in files["report.md"].read_text()
    assert "termination accuracy" in files["report.html"].read_text()
    # without targets in the batches, or heads in the model, nothing is scored
    assert evaluate_rollouts(oracle(spec), batches, context=2, horizon=5).heads == {}
    plain = evaluate_rollouts(_with_heads(oracle)(spec), _batches(frames, actions), context=2,
                              horizon=5)  # fmt: skip
    assert plain.heads == {}
    assert (
        "Rewards and terminations"
        not in write_report(plain, tmp_path / "p")["report.md"].read_text()
    )


def test_heads_one_step_from_real_context_score_every_transition(squares, oracle, tmp_path):
    """Every window of context + 1 frames is one transition scored from its real past;
    padded steps are skipped, and the report prints the figures beside the rollouts'."""
    from wmkit.eval import describe_heads, score_heads_one_step

    frames, actions, spec = squares
    rewards = torch.from_numpy(moving_squares(num_episodes=12, length=12, size=16, seed=3).rewards)
    dones = torch.zeros_like(rewards)
    dones[:, :-1] = (frames[:, 1:, :, -1].amax(dim=(2, 3)) > frames.amin()).float()
    windows = [  # clips of 3 frames at every start: context 2, one step
        {"frames": frames[:, s : s + 3], "actions": actions[:, s : s + 3],
         "rewards": rewards[:, s : s + 3], "dones": dones[:, s : s + 3]}
        for s in range(10)
    ]  # fmt: skip
    right = score_heads_one_step(_with_heads(oracle)(spec), windows, context=2)
    assert right["transitions"] == 120 and right["reward_mse"] == 0.0
    assert right["done_accuracy"] == 1.0 and right["done_real_ends"] == dones[:, 1:11].sum()
    assert right["reward_mse_zero"] == pytest.approx(rewards[:, 1:11].square().mean().item())
    wrong = score_heads_one_step(_with_heads(oracle, True)(spec), windows, context=2)
    assert wrong["reward_mse"] == pytest.approx((1 - rewards[:, 1:11]).square().mean().item())
    mask = torch.ones(12, 3, dtype=torch.bool)
    mask[:5, 1] = False  # the scored step of 5 clips is padding
    padded = [{**w, "step_mask": mask} for w in windows]
    masked = score_heads_one_step(_with_heads(oracle, True)(spec), padded, context=2)
    assert masked["transitions"] == 70
    assert masked["reward_mse"] == pytest.approx((1 - rewards[5:, 1:11]).square().mean().item())
    assert score_heads_one_step(oracle(spec), windows, context=2) == {"transitions": 120}
    lines = describe_heads({"one_step": right})
    assert lines[0].startswith("reward MSE one step from real context, on all 120 held-out")
    with pytest.raises(ValueError, match="context \\+ 1 = 3 frames"):
        score_heads_one_step(oracle(spec), [{"frames": frames[:, :2], "actions": actions}],
                             context=2)  # fmt: skip


def test_end_to_end_with_trained_toy_model_writes_every_report_file(
    squares, weights, cheap_features, tmp_path
):
    frames, actions, spec = squares
    model = _train_toy(frames[:8], actions[:8], spec)
    idm = InverseDynamicsModel(spec, hidden=16, depth=2)
    train_idm(idm, frames[:8], actions[:8], steps=10, batch_size=32)
    ev = evaluate_rollouts(
        model,
        _batches(frames[8:], actions[8:], size=2),
        context=3,
        horizon=7,
        tokenizer=ToyTokenizer(patch=2, levels=16),
        lpips=LPIPS("alex", weights=weights["lpips"]),
        fvd_extractor=cheap_features,
        fvd_feature_dim=16,
        idm=idm,
        action_mode="shuffle",
        keep_videos=2,
    )
    assert set(ev.overall) == {"model", "copy_last_frame", "tokenizer_recon"}
    for method in ev.overall.values():
        assert set(method) == {"psnr", "mse", "psnr_frame_mean", "ssim", "lpips", "fvd"}
    assert ev.overall["model"]["psnr"] > 10 and ev.overall["tokenizer_recon"]["ssim"] > 0.5
    assert set(ev.controllability["idm_accuracy"]) == {"real", "model", "copy_last_frame"}
    assert ev.videos["ground truth"].shape == (2, 10, 3, 16, 16)
    files = write_report(ev, tmp_path / "report", info={"model": "toy"})
    expected = {
        "report.md", "report.html", "metrics.json", "psnr_vs_horizon.png", "controllability.png",
        "videos/sample_0.mp4", "videos/sample_0.gif", "videos/sample_1.mp4", "videos/sample_1.gif",
    }  # fmt: skip
    assert expected <= set(files)
    for name in expected:
        assert (tmp_path / "report" / name).stat().st_size > 100, name
    html = (tmp_path / "report" / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 2
    assert html.count("data:video/mp4;base64,") == 2 and '<table id="metrics">' in html
    md = (tmp_path / "report" / "report.md").read_text()
    assert "| world model |" in md and "tokenizer reconstruction (ceiling)" in md
    assert f"**{ev.verdict()}.**" in md and '<p id="verdict">' in html
    metrics = json.loads((tmp_path / "report" / "metrics.json").read_text())
    assert metrics["overall"]["model"]["psnr"] == pytest.approx(ev.overall["model"]["psnr"])


def test_fvd_needs_nine_frames_and_bad_batches_fail(squares, oracle, cheap_features):
    frames, actions, spec = squares
    ev = evaluate_rollouts(oracle(spec), _batches(frames, actions), context=2, horizon=3,
                           fvd_extractor=cheap_features, fvd_feature_dim=16)  # fmt: skip
    assert "fvd" not in ev.overall["model"] and "FVD not computed" in ev.notes[0]
    with pytest.raises(ValueError, match="at least context \\+ horizon = 20"):
        evaluate_rollouts(oracle(spec), _batches(frames, actions), context=4, horizon=16)
    with pytest.raises(ValueError, match="no \\['actions'\\]"):
        evaluate_rollouts(oracle(spec), [{"frames": frames}], context=2, horizon=3)
    with pytest.raises(ValueError, match="must be >= 1"):
        evaluate_rollouts(oracle(spec), [], context=0, horizon=3)


def test_cli_weights_idm_and_rollout(tmp_path, monkeypatch, squares):
    monkeypatch.setenv("WMKIT_WEIGHTS_DIR", str(tmp_path / "cache"))
    assert main(["weights", "--lpips", "alex", "--no-i3d"]) == 0
    assert (tmp_path / "cache" / "lpips-alex.safetensors").is_file()
    eps = moving_squares(num_episodes=6, length=10, size=16, seed=1)
    eps.save(tmp_path / "data", fps=4, frame_format="npz")
    _, _, spec = squares
    assert spec.names  # the recording names its actions; a model built from a config may not
    ToyWorldModel(ActionSpec.discrete(spec.n), hidden=8).save_pretrained(tmp_path / "world")
    ToyWorldModel(ActionSpec.discrete(spec.n + 1), hidden=8).save_pretrained(tmp_path / "w6")
    ToyTokenizer(patch=2, levels=8).save_pretrained(tmp_path / "tok")
    assert (
        main(
            [
                "idm",
                "--data",
                str(tmp_path / "data"),
                "--out",
                str(tmp_path / "idm"),
                "--steps",
                "5",
            ]
        )
        == 0
    )
    out = tmp_path / "eval"
    code = main([
        "rollout", "--world", str(tmp_path / "world"), "--data", str(tmp_path / "data"),
        "--tokenizer", str(tmp_path / "tok"), "--idm", str(tmp_path / "idm"), "--split", "all",
        "--context", "2", "--horizon", "4", "--batch-size", "4", "--out", str(out),
    ])  # fmt: skip
    assert code == 0
    assert {"report.md", "report.html", "metrics.json"} <= {p.name for p in out.iterdir()}
    overall = json.loads((out / "metrics.json").read_text())["overall"]
    assert "lpips" in overall["model"] and "tokenizer_recon" in overall
    with pytest.raises(ValueError, match=r"mismatched actions of .*discrete\(n=6\)"):
        main(["rollout", "--world", str(tmp_path / "w6"), "--data", str(tmp_path / "data"),
              "--split", "all", "--context", "2", "--horizon", "4", "--out", str(out)])  # fmt: skip


def test_sign_reward_models_are_scored_on_the_reward_sign():
    """A model that says ``reward_transform = "sign"`` (DIAMOND) is compared with the sign of
    the recorded rewards, which may be any size (Atari's raw scores)."""
    from wmkit.eval.heads import HeadScores, describe_heads, reward_transform_of

    class SignModel:
        reward_transform = "sign"

    assert (
        reward_transform_of(SignModel()) == "sign" and reward_transform_of(object()) == "identity"
    )
    real = torch.tensor([[10.0, 0.0, -5.0], [50.0, 1.0, 0.0]])
    pred = torch.tensor([[1.0, 0.0, -1.0], [1.0, 1.0, 0.0]])
    sign = HeadScores(3, "sign")
    sign.update([pred], [None], real, None)
    assert sign.compute()["reward_mse"] == 0.0
    assert "of the reward's sign" in describe_heads(sign.compute())[0]
    raw = HeadScores(3)
    raw.update([pred], [None], real, None)
    assert raw.compute()["reward_mse"] == pytest.approx(((pred - real) ** 2).mean().item())
    with pytest.raises(ValueError, match="reward_transform must be one of"):
        HeadScores(3, "log")
