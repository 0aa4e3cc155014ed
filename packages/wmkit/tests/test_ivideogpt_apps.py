"""A converted iVideoGPT model in the apps: ``wmkit eval rollout`` scores the tiny
action-conditioned parity fixture against copy-last-frame on recorded 64×64 episodes with
4-d continuous actions, ``wmkit play`` loads it and steps it with keys, and the goal-conditioned
one predicts toward a goal frame through the Python API (neither command takes a goal)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from wmkit.apps.play.bindings import InputState
from wmkit.apps.play.cli import _parser as play_parser
from wmkit.apps.play.cli import build_session
from wmkit.ar_world import IVideoGPTWorldModel
from wmkit.ar_world.convert_ivideogpt import convert_ivideogpt
from wmkit.ar_world.sampling import Sampler
from wmkit.core import ActionSpec, to_float_video
from wmkit.core.data.episode_store import EpisodeWriter
from wmkit.core.testing import moving_squares, needs_parity, parity_dir
from wmkit.eval.cli import main as eval_main

PARITY = parity_dir("ivideogpt")
pytestmark = needs_parity("ivideogpt")
SPEC = ActionSpec.continuous(4, -1.0, 1.0)


@pytest.fixture(scope="module")
def episodes(tmp_path_factory) -> Path:
    """64×64 moving squares whose 2-d moves are the first two of 4 action values."""
    root = tmp_path_factory.mktemp("data") / "squares4"
    eps = moving_squares(6, 8, 64, continuous=True, seed=0)
    pad = np.zeros((*eps.actions.shape[:2], 2), np.float32)
    actions = np.concatenate([eps.actions, pad], axis=-1).clip(-1, 1)
    with EpisodeWriter(root, action_spec=SPEC, fps=10, env="squares", frame_format="npz") as w:
        for n in range(6):
            w.add_episode(eps.frames[n], actions[n], eps.rewards[n])
    return root


@pytest.fixture(scope="module")
def converted(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ivideogpt")
    for case in ("vp2-robosuite-64-act-cond", "oxe-64-goal-cond"):
        convert_ivideogpt(PARITY / case, out / case, max_frames=5)
    return out


def test_eval_rollout_scores_a_converted_model_against_copy_last_frame(
    tmp_path, converted, episodes
):
    world = converted / "vp2-robosuite-64-act-cond" / "world"
    out = tmp_path / "eval"
    code = eval_main([
        "rollout", "--world", str(world), "--data", str(episodes), "--split", "all",
        "--context", "2", "--horizon", "3", "--batch-size", "3", "--max-batches", "1",
        "--lpips", "off", "--out", str(out),
    ])  # fmt: skip
    assert code == 0 and (out / "report.html").is_file()
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["num_clips"] == 3 and metrics["horizon"] == 3
    model, copy = metrics["overall"]["model"], metrics["overall"]["copy_last_frame"]
    assert np.isfinite(model["psnr"]) and np.isfinite(copy["psnr"])
    assert model["psnr"] != copy["psnr"]  # the model's frames are its own, not copies


def test_play_steps_a_converted_model_with_keys(tmp_path, converted, episodes):
    args = play_parser().parse_args([
        "--world", str(converted / "vp2-robosuite-64-act-cond" / "world"), "--data",
        str(episodes), "--context", "2", "--record-dir", str(tmp_path),
    ])  # fmt: skip
    session, bindings = build_session(args)
    assert session.action_spec == SPEC and len(bindings.components) == 4
    first = session.reset()
    assert first.shape == (64, 64, 3) and first.dtype == np.uint8
    key = next(iter(bindings.components[0].keys))
    action = bindings.action(InputState(keys=[key]))
    assert action.shape == (4,) and action[0] != bindings.components[0].default
    highs = [max(c.keys, key=c.keys.get) for c in bindings.components]
    lows = [min(c.keys, key=c.keys.get) for c in bindings.components]
    up, down = bindings.action(InputState(keys=highs)), bindings.action(InputState(keys=lows))
    assert up.tolist() == [1.0] * 4 and down.tolist() == [-1.0] * 4
    session.world.decoder.sampler = Sampler(temperature=0.0)
    start = session.state.clone()
    pushed = session.step(up)
    session.state = start
    assert not np.array_equal(pushed, session.step(down))  # the keys steer the model
    for _ in range(3):  # past max_frames: the model re-anchors on its newest frames
        frame = session.step(action)
    assert frame.shape == (64, 64, 3) and session.t == 5


@torch.no_grad()
def test_goal_conditioned_prediction_through_the_python_api(converted, episodes):
    """The model-zoo page's snippet: ``rollout(context, actions, goal_frame=goal)``."""
    world = IVideoGPTWorldModel.from_pretrained(
        converted / "oxe-64-goal-cond" / "world", temperature=0.0
    )
    clip = to_float_video(moving_squares(1, 8, 64, seed=3).frames)  # [1, 8, 3, 64, 64]
    context, goal = clip[:, :1], clip[:, -1]  # the goal takes one of the two context slots
    advance = torch.zeros(1, 3, dtype=torch.long)
    frames = world.rollout(context, advance, goal_frame=goal).frames
    assert frames.shape == (1, 3, 3, 64, 64)
    other = world.rollout(context, advance, goal_frame=-goal).frames
    assert not torch.equal(frames, other)
    with pytest.raises(ValueError, match="needs goal_frame"):
        world.rollout(context, advance)
