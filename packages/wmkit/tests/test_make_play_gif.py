"""`tools/make_play_gif.py`, the script that makes the README's play GIF: the real column is
the simulator under the given keys, the model column is the world model reset on the same
real frame and stepped with the same actions, and the GIF holds one frame per step."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from wmkit.apps.play.bindings import default_bindings
from wmkit.core import ActionSpec, load_pretrained, to_float_video
from wmkit.core.data.envs import make_env
from wmkit.core.testing import ToyWorldModel, loaded_script

SCRIPT = Path(__file__).resolve().parents[3] / "tools" / "make_play_gif.py"
KEYS = "d*2,Space,ArrowDown,none"
CRAFTER = {"resolution": 32, "area": 32}  # a small world generates in ~0.15 s


@pytest.fixture(scope="module")
def tool():
    with loaded_script(SCRIPT) as module:
        yield module


@pytest.fixture
def world_dir(tmp_path):
    """A tiny pixel-space world model with Crafter's actions whose frames change with them."""
    env = make_env("crafter", **CRAFTER)
    torch.manual_seed(0)
    world = ToyWorldModel(env.action_spec, hidden=8)
    torch.nn.init.normal_(world.out.weight, std=0.05)
    world.save_pretrained(tmp_path / "world")
    return tmp_path / "world"


def test_parse_keys(tool):
    assert tool.parse_keys("d*2, Space,none,ArrowUp") == ["d", "d", " ", None, "ArrowUp"]
    for bad in ("d*0", "d*x", "d,,a", ""):
        with pytest.raises(ValueError, match="--keys"):
            tool.parse_keys(bad)


def test_keys_become_plays_actions(tool):
    spec = make_env("crafter", **CRAFTER).action_spec
    bindings = default_bindings(spec)
    actions = tool.actions_for_keys(bindings, tool.parse_keys(KEYS))
    names = [spec.names[int(a)] for a in actions]
    assert names == ["move_right", "move_right", "do", "move_down", "noop"]
    with pytest.raises(ValueError, match="not bound"):
        tool.actions_for_keys(bindings, ["F13"])


def test_real_column_is_the_simulator_under_those_actions(tool):
    env = make_env("crafter", **CRAFTER)
    actions = tool.actions_for_keys(default_bindings(env.action_spec), tool.parse_keys(KEYS))
    frames, n = tool.record_real(env, actions, seed=3)
    assert n == len(actions) and frames.shape == (n + 1, 32, 32, 3)
    direct = [env.reset(3)] + [env.step(int(a))[0] for a in actions]
    np.testing.assert_array_equal(frames, np.stack(direct))
    assert not np.array_equal(frames[0], frames[2])  # walking right scrolls the view


def test_model_column_replays_the_actions_from_the_real_context(tool, world_dir):
    world = load_pretrained(world_dir)
    env = make_env("crafter", **CRAFTER)
    actions = tool.actions_for_keys(default_bindings(env.action_spec), tool.parse_keys(KEYS))
    real, _ = tool.record_real(env, actions, seed=0)
    for context in (1, 2):
        model = tool.imagine(world, real[:context], actions[context - 1 :])
        assert model.shape == real.shape
        np.testing.assert_array_equal(model[:context], real[:context])
        state = world.reset(to_float_video(real[:context]))
        expected = []
        for a in actions[context - 1 :]:
            out = world.step(state, a[None])
            state = out.state
            frame = ((out.frame[0].clamp(-1, 1) + 1) * 127.5).round().byte()
            expected.append(frame.permute(1, 2, 0).numpy())
        np.testing.assert_array_equal(model[context:], np.stack(expected))
        assert not np.array_equal(model[-1], real[-1])  # a toy model, not the simulator
    with pytest.raises(ValueError, match=r"uint8 \[K, H, W, 3\]"):
        tool.imagine(world, real[0], actions)


def test_side_by_side_places_both_columns_and_a_caption(tool):
    rng = np.random.default_rng(0)
    real = rng.integers(0, 256, (2, 8, 8, 3), dtype=np.uint8)
    model = rng.integers(0, 256, (2, 8, 8, 3), dtype=np.uint8)
    out = tool.side_by_side(real, model, ["step 0", "step 1: d -> move_right"], scale=4, gap=8)
    text_h = 16  # max(16, 32 // 10)
    top = 8 + text_h + 8
    assert out.shape == (2, 32 + 2 * (text_h + 8) + 8, 2 * 32 + 3 * 8, 3)
    for t in range(2):
        left, right = out[t, top : top + 32, 8:40], out[t, top : top + 32, 48:80]
        np.testing.assert_array_equal(left, real[t].repeat(4, 0).repeat(4, 1))
        np.testing.assert_array_equal(right, model[t].repeat(4, 0).repeat(4, 1))
    assert out[:, :top].max() > 200  # the titles are drawn
    assert not np.array_equal(out[0, top + 32 :], out[1, top + 32 :])  # captions differ
    with pytest.raises(ValueError, match="one caption per frame"):
        tool.side_by_side(real, model, ["only one"])


def test_main_writes_one_gif_frame_per_step(tool, world_dir, tmp_path):
    out = tmp_path / "play.gif"
    argv = ["--world", str(world_dir), "--resolution", "32", "--env-arg", "area=32",
            "--keys", KEYS, "--scale", "3", "--out", str(out)]  # fmt: skip
    assert tool.main(argv) == 0
    with Image.open(out) as gif:
        assert gif.n_frames == 6  # the start and one per key press
        assert gif.size == (2 * 96 + 3 * 8, 96 + 2 * (16 + 8) + 8)
        assert gif.info["loop"] == 0
    with pytest.raises(ValueError, match="not bound"):
        tool.main([*argv[:-1], str(tmp_path / "x.gif"), "--keys", "F13"])
    with pytest.raises(SystemExit, match="--context"):
        tool.main([*argv, "--context", "0"])


def test_a_model_at_another_resolution_is_refused(tool):
    class FixedSize(ToyWorldModel):
        def step(self, state, action):
            out = super().step(state, action)
            return type(out)(out.frame[..., :16, :16], out.reward, out.state)

    spec = ActionSpec.discrete(3)
    context = np.zeros((1, 32, 32, 3), np.uint8)
    with pytest.raises(ValueError, match="--resolution"):
        tool.imagine(FixedSize(spec), context, [torch.tensor(1)])
