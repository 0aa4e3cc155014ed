"""`wmkit record` and `wmkit data info`: recording, resuming after SIGKILL, inspecting."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from wmkit.core.data.envs import make_env
from wmkit.core.data.episode_store import EpisodeStore
from wmkit.core.data.info import command as data_command
from wmkit.core.data.record import command as record_command
from wmkit.core.data.record import episode_seed, record

SIMS = {
    "crafter": ("crafter", {"area": 32}, "discrete", ()),  # small world: 5x faster reset
    "metaworld": ("metaworld", {"task": "pick-place-v3"}, "continuous", (4,)),
    "vizdoom": ("vizdoom", {"scenario": "defend_the_center"}, "multi_discrete", (3,)),
    "atari": ("ale_py", {"game": "MsPacman"}, "discrete", ()),
}


@pytest.fixture(scope="module", params=list(SIMS))
def dataset(request, tmp_path_factory):
    module, options, _, _ = SIMS[request.param]
    pytest.importorskip(module)
    out = tmp_path_factory.mktemp(request.param) / "data"
    record(request.param, out, episodes=2, resolution=32, seed=0, max_steps=16,
           env_kwargs=options, progress=False)  # fmt: skip
    return request.param, out


def _episodes(root):
    store = EpisodeStore(root)
    return store, [store.read_episode(i) for i in range(len(store))]


def _assert_same_episodes(a, b):
    store_a, eps_a = _episodes(a)
    store_b, eps_b = _episodes(b)
    assert len(eps_a) == len(eps_b)
    for i, ((fa, sa), (fb, sb)) in enumerate(zip(eps_a, eps_b)):
        assert store_a.episode_seed(i) == store_b.episode_seed(i) == episode_seed(0, i)
        assert np.array_equal(fa, fb), f"episode {i} frames differ"
        for key in ("actions", "rewards", "dones"):
            assert np.array_equal(sa[key], sb[key]), f"episode {i} {key} differ"


def test_recorded_episodes_load_back(dataset):
    name, root = dataset
    _, _, kind, action_shape = SIMS[name]
    store, eps = _episodes(root)
    assert len(store) == 2 and store.resolution == (32, 32)
    assert store.action_spec.kind == kind and store.action_spec.action_shape == action_shape
    assert store.manifest["env"] == name and store.manifest["policy"]["name"]
    assert store.manifest["env_kwargs"]["max_steps"] == 16
    for frames, steps in eps:
        t = len(frames)
        assert 1 < t <= 16 and frames.shape == (t, 32, 32, 3) and frames.dtype == np.uint8
        assert frames.std() > 5  # not black
        assert np.abs(np.diff(frames.astype(np.int16), axis=0)).max() > 0  # not frozen
        assert steps["actions"].shape == (t, *action_shape)
        assert steps["actions"].dtype == (np.float32 if kind == "continuous" else np.int64)
        assert steps["rewards"].shape == (t,) and steps["dones"].shape == (t,)
    assert not np.array_equal(eps[0][0][:2], eps[1][0][:2])  # episodes differ
    store.verify()
    # the observation after the last action is kept, and it is that one (lossless video)
    env = make_env(name, 32, **store.manifest["env_kwargs"])
    try:
        for i, (_, steps) in enumerate(eps):
            env.reset(store.episode_seed(i))
            for a in steps["actions"]:
                last, _, _ = env.step(a)
            assert store.has_final_frame(i)
            assert np.array_equal(store.final_frame(i), last)
    finally:
        env.close()


def test_record_is_deterministic_and_seed_dependent(dataset, tmp_path):
    name, root = dataset
    options = SIMS[name][1]
    again = record(name, tmp_path / "again", 2, resolution=32, seed=0, max_steps=16,
                   env_kwargs=options, progress=False)  # fmt: skip
    _assert_same_episodes(root, again)
    other = record(name, tmp_path / "other", 1, resolution=32, seed=1, max_steps=16,
                   env_kwargs=options, progress=False)  # fmt: skip
    assert not np.array_equal(EpisodeStore(other).read_frames(0, 0, 4),
                              EpisodeStore(root).read_frames(0, 0, 4))  # fmt: skip


def test_data_info_prints_summary_and_writes_gif(dataset, tmp_path, capsys):
    name, root = dataset
    gif = tmp_path / "sample.gif"
    assert data_command.run(["info", str(root), "--gif", str(gif), "--verify"]) == 0
    out = capsys.readouterr().out
    assert "episodes     2" in out and "resolution   32x32" in out and f"env          {name}" in out
    assert "verify       ok" in out and gif.stat().st_size > 0
    from PIL import Image

    with Image.open(gif) as im:
        assert im.n_frames == 32 and im.size == (2 * 32 + 2, 32)  # two episodes side by side
    expected = {"crafter": "move_left", "metaworld": "gripper", "vizdoom": "TURN_LEFT",
                "atari": "DOWNLEFT"}[name]  # fmt: skip
    assert expected in out  # the action histogram names the actions


def test_resume_after_sigkill_matches_an_uninterrupted_run(tmp_path):
    pytest.importorskip("crafter")
    args = ["crafter", "--episodes", "6", "--resolution", "32", "--max-steps", "12",
            "--env-option", "area=32", "--episodes-per-shard", "1", "--no-progress"]  # fmt: skip
    killed = tmp_path / "killed"
    proc = subprocess.Popen(
        [sys.executable, "-m", "wmkit.core.data.record", *args, "--out", str(killed)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    shards = killed / "shards"
    deadline = time.monotonic() + 120
    while not (shards.is_dir() and any(p.name.isdigit() for p in shards.iterdir())):
        if proc.poll() is not None:
            pytest.fail(f"recorder exited early: {proc.stderr.read().decode()}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("no shard was written within 120 s")
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    done = len(EpisodeStore(killed))
    assert 1 <= done < 6  # killed part-way

    assert record_command.run([*args, "--out", str(killed)]) == 0  # resume
    assert not any(p.name.startswith(".tmp-") for p in shards.iterdir())
    clean = record("crafter", tmp_path / "clean", 6, resolution=32, max_steps=12,
                   episodes_per_shard=1, env_kwargs={"area": 32}, progress=False)  # fmt: skip
    _assert_same_episodes(killed, clean)
    EpisodeStore(killed).verify()


def test_resume_with_other_settings_is_refused(tmp_path):
    pytest.importorskip("crafter")
    kw = {"resolution": 32, "env_kwargs": {"area": 32}, "progress": False}
    record("crafter", tmp_path / "d", 1, max_steps=5, **kw)
    with pytest.raises(ValueError, match="different settings.*env_kwargs"):
        record("crafter", tmp_path / "d", 2, max_steps=6, **kw)
    with pytest.raises(ValueError, match="different settings.*policy"):
        record("crafter", tmp_path / "d", 2, max_steps=5, policy="random", **kw)
    with pytest.raises(ValueError, match="holds 32x32 frames"):
        record("crafter", tmp_path / "d", 2, max_steps=5, **{**kw, "resolution": 64})
    assert len(EpisodeStore(record("crafter", tmp_path / "d", 2, max_steps=5, **kw))) == 2


def test_cli_errors_name_the_choices(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        record_command.run(["minecraft", "--episodes", "1", "--out", str(tmp_path)])
    assert e.value.code == 2
    assert "'crafter', 'metaworld', 'vizdoom'" in capsys.readouterr().err
    assert record_command.run(["crafter", "--episodes", "1", "--out", str(tmp_path / "x"),
                               "--scenario", "basic"]) == 2  # fmt: skip
    assert "has no option 'scenario'" in capsys.readouterr().err
    assert record_command.run(["crafter", "--episodes", "1", "--out", str(tmp_path / "y"),
                               "--policy", "expert"]) == 2  # fmt: skip
    assert "unknown policy 'expert'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        record_command.run(["--help"])
    assert e.value.code == 0
    help_text = capsys.readouterr().out
    assert all(name in help_text for name in ("crafter", "metaworld", "vizdoom", "atari"))
    assert data_command.run(["info", str(tmp_path / "missing")]) == 2
    assert "no manifest.json" in capsys.readouterr().err
