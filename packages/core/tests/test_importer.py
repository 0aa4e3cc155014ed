import json
import shutil

import numpy as np
import pytest

from wmkit.core.action_spec import ActionSpec
from wmkit.core.data.episode_store import EpisodeStore
from wmkit.core.data.info import _run as data_cli
from wmkit.core.data.lerobot import LeRobotSource
from wmkit.core.data.video_folder import VideoFolderSource
from wmkit.core.testing import write_lerobot_dataset
from wmkit.core.video_io import write_video

LENGTHS = (16, 20, 12)


def _episodes(discrete: bool) -> list[dict]:
    rng = np.random.default_rng(0)
    out = []
    for n in LENGTHS:
        actions = (
            rng.integers(0, 15, (n, 1)).astype(np.int64)
            if discrete
            else rng.uniform(-1, 1, (n, 2)).astype(np.float32)
        )
        out.append({
            "frames": rng.integers(0, 256, (n, 16, 16, 3), dtype=np.uint8),
            "actions": actions,
            "rewards": rng.random(n).astype(np.float32),
        })  # fmt: skip
    return out


def _same_episodes(store: EpisodeStore, source) -> None:
    assert len(store) == len(source)
    assert store.action_spec == source.action_spec and store.fps == source.fps
    for i in range(len(source)):
        n = source.episode_length(i)
        assert store.episode_length(i) == n
        np.testing.assert_array_equal(store.read_frames(i, 0, n), source.read_frames(i, 0, n))
        got, want = store.read_steps(i, 0, n), source.read_steps(i, 0, n)
        if source.action_spec is None:
            assert got == {}
            continue
        np.testing.assert_array_equal(got["actions"], want["actions"])
        assert got["actions"].dtype == want["actions"].dtype
        np.testing.assert_array_equal(got["rewards"], want["rewards"])


@pytest.mark.parametrize(("version", "discrete"), [("v2.1", True), ("v3.0", False)])
def test_import_lerobot_keeps_frames_actions_rewards(tmp_path, version, discrete, capsys):
    src = write_lerobot_dataset(tmp_path / "game", _episodes(discrete), version=version)
    out = tmp_path / "store"
    assert data_cli(["import", str(src), "--out", str(out), "--no-progress"]) == 0
    store = EpisodeStore(out)
    source = LeRobotSource(src)
    assert store.action_spec.kind == ("discrete" if discrete else "continuous")
    _same_episodes(store, source)
    assert store.manifest["env"] == "lerobot:game"
    assert store.manifest["env_kwargs"]["source"] == str(src.resolve())
    assert store._episodes[2].info == {"source_episode": 2, "episode_index": 2}
    assert data_cli(["info", str(out)]) == 0
    assert "action spec" in capsys.readouterr().out


def test_import_with_a_given_spec_and_resolution(tmp_path):
    src = write_lerobot_dataset(tmp_path / "game", _episodes(True))
    out = tmp_path / "store"
    spec = '{"kind": "discrete", "n": 18}'
    args = ["import", str(src), "--out", str(out), "--no-progress", "--resolution", "8"]
    assert data_cli([*args, "--action-spec", spec, "--frame-format", "video"]) == 0
    store = EpisodeStore(out)
    assert store.action_spec == ActionSpec.discrete(18) and store.resolution == (8, 8)
    assert data_cli([*args, "--action-spec", '{"kind": "discrete"}']) == 2  # clear error


def test_import_video_folder_is_action_free(tmp_path, capsys):
    rng = np.random.default_rng(0)
    folder = tmp_path / "videos"
    for i, n in enumerate(LENGTHS):
        frames = rng.integers(0, 256, (n, 16, 16, 3), dtype=np.uint8)
        write_video(folder / f"clip{i}.mp4", frames, fps=12, lossless=True, gop=8)
    out = tmp_path / "store"
    assert data_cli(["import", str(folder), "--out", str(out), "--no-progress"]) == 0
    store = EpisodeStore(out)
    assert store.action_spec is None
    assert json.loads((out / "manifest.json").read_text())["action_spec"] is None
    _same_episodes(store, VideoFolderSource(folder))
    assert store._episodes[1].info["file"] == "clip1.mp4"
    assert data_cli(["info", str(out)]) == 0
    assert "action-free" in capsys.readouterr().out
    assert data_cli(["import", str(folder), "--out", str(out), "--action-spec", "{}"]) == 2


def test_interrupted_import_resumes(tmp_path, monkeypatch):
    from wmkit.core.data.episode_store import EpisodeWriter

    src = write_lerobot_dataset(tmp_path / "game", _episodes(True))
    out = tmp_path / "store"
    args = ["import", str(src), "--out", str(out), "--no-progress", "--episodes-per-shard", "1"]
    real_add, calls = EpisodeWriter.add_episode, []

    def add_then_die(self, *a, **k):
        if len(calls) == 2:
            raise KeyboardInterrupt
        calls.append(1)
        return real_add(self, *a, **k)

    monkeypatch.setattr(EpisodeWriter, "add_episode", add_then_die)
    with pytest.raises(KeyboardInterrupt):
        data_cli(args)
    assert len(EpisodeStore(out)) == 2
    monkeypatch.setattr(EpisodeWriter, "add_episode", real_add)
    # a half-written shard left behind by a harder kill is dropped and rewritten
    shutil.copytree(out / "shards" / "000001", out / "shards" / ".tmp-000002")
    assert data_cli(args) == 0
    _same_episodes(EpisodeStore(out), LeRobotSource(src))
    # other settings do not silently mix into the same dataset
    assert data_cli([*args, "--resolution", "8"]) == 2
