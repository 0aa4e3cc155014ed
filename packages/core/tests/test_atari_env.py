"""The Atari env behind ``wmkit record atari``: DIAMOND's preprocessing (frame skip, max of the
last two screens, area resize), the minimal action set, life-loss ends, and a recording."""

import numpy as np
import pytest

from wmkit.core.data.envs.atari import area_resize, rom_available, rom_id
from wmkit.core.data.episode_store import EpisodeStore
from wmkit.core.data.record import command as record_command


def _reference_area_mean(image: np.ndarray, size: int) -> np.ndarray:
    """Each output pixel's mean over the input area it covers, by explicit loops (float)."""
    h, w, c = image.shape
    out = np.zeros((size, size, c))
    for i in range(size):
        for j in range(size):
            y0, y1 = i * h / size, (i + 1) * h / size
            x0, x1 = j * w / size, (j + 1) * w / size
            acc = np.zeros(c)
            for y in range(int(y0), min(h, int(np.ceil(y1)))):
                for x in range(int(x0), min(w, int(np.ceil(x1)))):
                    fy = min(y1, y + 1) - max(y0, y)
                    fx = min(x1, x + 1) - max(x0, x)
                    acc += fy * fx * image[y, x]
            out[i, j] = acc / ((y1 - y0) * (x1 - x0))
    return out


def test_rom_ids_from_gymnasium_and_ale_names():
    assert rom_id("MsPacman") == "ms_pacman"
    assert rom_id("MsPacmanNoFrameskip-v4") == "ms_pacman"
    assert rom_id("ALE/SpaceInvaders-v5") == "space_invaders"
    assert rom_id("UpNDown") == "up_n_down"
    assert rom_id("KungFuMaster") == "kung_fu_master"
    assert rom_id("breakout") == "breakout"


def test_area_resize_is_the_area_mean_rounded():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (21, 16, 3), dtype=np.uint8)
    for size in (1, 5, 7, 8, 16):
        want = _reference_area_mean(image, size)
        got = area_resize(image, size).astype(np.float64)
        assert np.abs(got - want).max() <= 0.5 + 1e-9, size
    # an integer factor is the block mean; an exact tie rounds half to even
    block = np.array([[[1], [2]], [[2], [2]]], np.uint8)  # mean 1.75
    assert area_resize(block, 1).item() == 2
    assert area_resize(np.array([[[2], [3]]] * 2, np.uint8), 1).item() == 2  # 2.5 -> 2
    assert area_resize(np.array([[[3], [4]]] * 2, np.uint8), 1).item() == 4  # 3.5 -> 4
    with pytest.raises(ValueError, match="shrinks only"):
        area_resize(image, 17)
    with pytest.raises(ValueError, match=r"uint8 \[H, W, C\]"):
        area_resize(image.astype(np.float32), 8)


@pytest.fixture(scope="module")
def ale():
    return pytest.importorskip("ale_py")


def test_rom_available_says_which_games_can_start(ale):
    from wmkit.core.data.envs.atari import AtariEnv

    assert not rom_available("NoSuchGame")
    if rom_available("MsPacman"):  # then an env of it starts
        assert AtariEnv(64, "ALE/MsPacman-v5").action_spec.n == 9


def test_area_resize_equals_opencv_on_atari_screens(ale):
    cv2 = pytest.importorskip("cv2")
    from wmkit.core.data.envs.atari import AtariEnv

    env = AtariEnv(64, "MsPacman")
    env.reset(0)
    rng = np.random.default_rng(0)
    for _ in range(30):
        env.step(int(rng.integers(env.action_spec.n)))
        raw = env.raw_screen
        want = cv2.resize(raw, (64, 64), interpolation=cv2.INTER_AREA)
        np.testing.assert_array_equal(area_resize(raw, 64), want)


def test_step_is_max_of_last_two_of_four_frames(ale):
    """Twin emulators from one seed: one skips 4 frames per step, the other steps frame by
    frame; the first's observation is the area-resized max of the other's last two screens
    and its reward the sum of the four."""
    from wmkit.core.data.envs.atari import AtariEnv

    skip = AtariEnv(64, "MsPacman", frame_skip=4, noop_max=5)
    single = AtariEnv(64, "MsPacman", frame_skip=1, noop_max=5)
    assert skip.action_spec.n == 9 and skip.action_spec.names[:2] == ("NOOP", "UP")
    assert skip.fps == 15.0
    np.testing.assert_array_equal(skip.reset(7), single.reset(7))
    rng = np.random.default_rng(1)
    for _ in range(40):
        action = int(rng.integers(9))
        obs, reward, done = skip.step(action)
        screens, total = [], 0.0
        for _ in range(4):
            _, r, _ = single.step(action)
            total += r
            screens.append(single.raw_screen)
        np.testing.assert_array_equal(obs, area_resize(np.maximum(screens[-2], screens[-1]), 64))
        assert reward == total and not done


def test_done_on_life_loss_ends_before_the_game(ale):
    from wmkit.core.data.envs.atari import AtariEnv

    env = AtariEnv(32, "Breakout", done_on_life_loss=True)
    env.reset(0)
    lives = env._ale.lives()
    rng = np.random.default_rng(0)
    for _ in range(2000):
        _, _, done = env.step(int(rng.integers(env.action_spec.n)))
        if done:
            break
    assert done and 0 < env._ale.lives() < lives and not env._ale.game_over()
    with pytest.raises(ValueError, match=r"atari action must be in \[0, 4\)"):
        env.step(4)
    with pytest.raises(ValueError, match="unknown Atari game 'Minecraft'"):
        AtariEnv(64, "Minecraft")


def test_record_cli_writes_an_atari_episode(ale, tmp_path):
    out = tmp_path / "pacman"
    argv = ["atari", "--game", "MsPacman", "--episodes", "1", "--max-steps", "6",
            "--out", str(out), "--no-progress"]  # fmt: skip
    assert record_command.run(argv) == 0
    store = EpisodeStore(out)
    frames, steps = store.read_episode(0)
    assert len(store) == 1 and store.resolution == (64, 64)
    assert frames.shape == (6, 64, 64, 3) and frames.dtype == np.uint8
    assert store.action_spec.n == 9 and store.action_spec.names[-1] == "DOWNLEFT"
    assert store.manifest["env_kwargs"]["game"] == "MsPacman"
    assert steps["actions"].shape == (6,)
