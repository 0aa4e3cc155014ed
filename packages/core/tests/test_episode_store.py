import json

import numpy as np
import pytest

from wmkit.core import ActionSpec
from wmkit.core.data.episode_store import CorruptDatasetError, EpisodeStore, EpisodeWriter
from wmkit.core.testing import moving_squares


def _episodes(n=5, continuous=False, seed=0):
    eps = moving_squares(n, 12, 16, continuous=continuous, seed=seed)
    lengths = [12 - (i % 3) * 2 for i in range(n)]  # 12, 10, 8, ...
    return eps, lengths


def _squares_writer(root, action_spec, fps=10, **kw):
    """An ``EpisodeWriter`` of the moving-squares settings (2 episodes a shard, chunks of 4)."""
    settings = {"episodes_per_shard": 2, "chunk": 4, **kw}
    return EpisodeWriter(root, action_spec=action_spec, fps=fps, env="squares",
                         env_kwargs={"size": 16}, policy={"name": "sticky"}, seed=0,
                         **settings)  # fmt: skip


def _write(root, n=5, frame_format="video", per_shard=2, continuous=False, close=True, **kw):
    eps, lengths = _episodes(n, continuous)
    writer = _squares_writer(
        root, eps.action_spec, frame_format=frame_format, episodes_per_shard=per_shard, **kw
    )
    for i in range(n):
        t = lengths[i]
        writer.add_episode(
            eps.frames[i, :t],
            eps.actions[i, :t],
            eps.rewards[i, :t],
            eps.dones[i, :t],
            seed=100 + i,
            info={"i": i},
        )
    if close:
        writer.close()
    return eps, lengths, writer


@pytest.mark.parametrize("frame_format", ["video", "npz"])
@pytest.mark.parametrize("continuous", [False, True])
def test_round_trip_exact(tmp_path, frame_format, continuous):
    eps, lengths, _ = _write(tmp_path / "d", frame_format=frame_format, continuous=continuous)
    store = EpisodeStore(tmp_path / "d")
    assert len(store) == 5 and store.fps == 10 and store.resolution == (16, 16)
    assert store.action_spec == eps.action_spec
    assert sorted(p.name for p in (tmp_path / "d" / "shards").iterdir()) == [
        "000000",
        "000001",
        "000002",
    ]
    for i in range(5):
        assert store.episode_length(i) == lengths[i] and store.episode_seed(i) == 100 + i
        frames, steps = store.read_episode(i)
        t = lengths[i]
        assert frames.dtype == np.uint8 and np.array_equal(frames, eps.frames[i, :t])
        assert np.array_equal(steps["actions"], eps.actions[i, :t])
        assert steps["actions"].dtype == (np.float32 if continuous else np.int64)
        assert np.array_equal(steps["rewards"], eps.rewards[i, :t])
        assert steps["dones"].dtype == bool
    window = store.read_frames(0, 5, 9)  # crosses a chunk/keyframe boundary
    assert np.array_equal(window, eps.frames[0, 5:9])
    assert np.array_equal(store.read_steps(3, 2, 6)["actions"], eps.actions[3, 2:6])
    manifest = json.loads((tmp_path / "d" / "manifest.json").read_text())
    assert manifest["env"] == "squares" and manifest["policy"] == {"name": "sticky"}
    assert "wmkit-core" in manifest["versions"]


def test_lossy_video(tmp_path):
    eps, _, _ = _write(tmp_path / "d", n=2, crf=23)
    frames = EpisodeStore(tmp_path / "d").read_frames(0, 0, 4)
    assert np.abs(frames.astype(int) - eps.frames[0, :4]).mean() < 8


def test_windows_are_checked(tmp_path):
    _write(tmp_path / "d", n=2)
    store = EpisodeStore(tmp_path / "d")
    with pytest.raises(IndexError, match="outside the 10 frames of episode 1"):
        store.read_frames(1, 8, 11)
    with pytest.raises(IndexError, match="outside the 10 frames of episode 1"):
        store.read_frames(1, 8, 11)  # no final observation: frame 10 does not exist
    assert not store.has_final_frame(1) and store.final_frame(1) is None
    with pytest.raises(IndexError, match="episode 7 out of range"):
        store.episode_length(7)


@pytest.mark.parametrize("frame_format", ["video", "npz"])
def test_final_observation_round_trip(tmp_path, frame_format):
    """The observation after the last action is stored as frame ``T`` of the frames file;
    steps stay ``T`` long, and an episode without one reads as before."""
    eps, _ = _episodes(3)
    writer = EpisodeWriter(tmp_path / "d", action_spec=eps.action_spec, fps=10, env="squares",
                           frame_format=frame_format, chunk=4)  # fmt: skip
    lengths = (8, 9, 11)  # 8 = 2 chunks: the final frame opens a third
    for i, t in enumerate(lengths):
        final = eps.frames[i, t] if i != 1 else None
        writer.add_episode(eps.frames[i, :t], eps.actions[i, :t], eps.rewards[i, :t],
                           eps.dones[i, :t], final_frame=final)  # fmt: skip
    with pytest.raises(ValueError, match=r"final_frame must be one uint8 frame \(16, 16, 3\)"):
        writer.add_episode(eps.frames[0, :4], eps.actions[0, :4], final_frame=eps.frames[0, :2])
    writer.close()
    store = EpisodeStore(tmp_path / "d")
    assert [store.has_final_frame(i) for i in range(3)] == [True, False, True]
    for i in (0, 2):
        t = lengths[i]
        assert store.episode_length(i) == t
        assert np.array_equal(store.final_frame(i), eps.frames[i, t])
        assert np.array_equal(store.read_frames(i, t - 3, t + 1), eps.frames[i, t - 3 : t + 1])
        frames, steps = store.read_episode(i)
        assert len(frames) == len(steps["actions"]) == t
        with pytest.raises(IndexError, match=f"outside the {t} steps"):
            store.read_steps(i, 0, t + 1)
    assert store.final_frame(1) is None
    with pytest.raises(IndexError, match="outside the 9 frames of episode 1"):
        store.read_frames(1, 0, 10)
    meta = json.loads((tmp_path / "d" / "shards" / "000000" / "shard.json").read_text())
    assert [e.get("final_frame") for e in meta["episodes"][:2]] == [True, None]
    store.verify()


def test_resume_after_kill_keeps_complete_shards(tmp_path):
    root = tmp_path / "d"
    _write(root, n=3, per_shard=2, close=False)  # "killed": episode 2 only in .tmp-000001
    assert (root / "shards" / ".tmp-000001").is_dir()
    eps, lengths = _episodes(5)
    writer = _squares_writer(root, eps.action_spec)
    assert writer.num_episodes == 2 and not (root / "shards" / ".tmp-000001").exists()
    for i in range(2, 5):
        t = lengths[i]
        assert writer.add_episode(eps.frames[i, :t], eps.actions[i, :t], eps.rewards[i, :t]) == i
    writer.close()
    store = EpisodeStore(root)
    assert len(store) == 5
    assert np.array_equal(store.read_episode(4)[0], eps.frames[4, : lengths[4]])


def test_resume_with_other_settings_is_refused(tmp_path):
    _write(tmp_path / "d", n=1)
    with pytest.raises(ValueError, match=r"different settings \(fps: fps=10.0 vs 30.0\)"):
        _squares_writer(tmp_path / "d", _episodes(1)[0].action_spec, fps=30)
    with pytest.raises(ValueError, match="different settings"):
        _squares_writer(tmp_path / "d", ActionSpec.discrete(6))


def test_bad_episode_input(tmp_path):
    eps, _ = _episodes(1)
    writer = EpisodeWriter(tmp_path / "d", action_spec=eps.action_spec, fps=10, env="squares")
    with pytest.raises(ValueError, match="actions has 3 steps but frames has 12"):
        writer.add_episode(eps.frames[0], eps.actions[0, :3])
    with pytest.raises(ValueError, match="out of range"):
        writer.add_episode(eps.frames[0], eps.actions[0] + 5)
    with pytest.raises(TypeError, match="uint8"):
        writer.add_episode(eps.frames[0].astype(np.float32), eps.actions[0])
    writer.add_episode(eps.frames[0], eps.actions[0])
    with pytest.raises(ValueError, match="dataset is 16x16"):
        writer.add_episode(np.zeros((12, 8, 8, 3), np.uint8), eps.actions[0])


def test_truncated_file_is_named(tmp_path):
    _write(tmp_path / "d", n=2)
    video = tmp_path / "d" / "shards" / "000000" / "ep000001.mkv"
    video.write_bytes(video.read_bytes()[:-50])
    with pytest.raises(CorruptDatasetError, match=r"ep000001.mkv is \d+ bytes, expected"):
        EpisodeStore(tmp_path / "d")


def test_missing_files_are_named(tmp_path):
    _write(tmp_path / "d", n=4)
    (tmp_path / "d" / "shards" / "000001" / "steps.parquet").unlink()
    with pytest.raises(CorruptDatasetError, match=r"000001/steps.parquet is missing"):
        EpisodeStore(tmp_path / "d")
    with pytest.raises(FileNotFoundError, match="not a wmkit episode dataset"):
        EpisodeStore(tmp_path)


@pytest.mark.parametrize("frame_format", ["video", "npz"])
def test_corrupt_content_is_named(tmp_path, frame_format):
    _write(tmp_path / "d", n=2, frame_format=frame_format)
    shard = tmp_path / "d" / "shards" / "000000"
    suffix = "mkv" if frame_format == "video" else "npz"
    for name in (f"ep000000.{suffix}", "steps.parquet"):
        data = bytearray((shard / name).read_bytes())
        data[: len(data) // 2] = bytes(len(data) // 2)  # same size, garbage content
        (shard / name).write_bytes(bytes(data))
    store = EpisodeStore(tmp_path / "d")  # sizes still match
    with pytest.raises(CorruptDatasetError, match="sha256"):
        store.verify()
    with pytest.raises(CorruptDatasetError, match=f"ep000000.{suffix}"):
        store.read_frames(0, 0, 4)
    with pytest.raises(CorruptDatasetError, match="steps.parquet"):
        store.read_steps(0, 0, 4)


def test_missing_keys_name_the_file_and_the_key(tmp_path):
    """A manifest or shard.json without a key it needs is a CorruptDatasetError, not a
    KeyError."""
    _write(tmp_path / "d", n=2, per_shard=1)
    manifest_path = tmp_path / "d" / "manifest.json"
    shard_path = tmp_path / "d" / "shards" / "000001" / "shard.json"
    manifest, shard = json.loads(manifest_path.read_text()), json.loads(shard_path.read_text())

    def opens_with(path, edited, match):
        path.write_text(json.dumps(edited))
        with pytest.raises(CorruptDatasetError, match=match):
            EpisodeStore(tmp_path / "d")

    opens_with(
        manifest_path,
        {k: v for k, v in manifest.items() if k != "action_spec"},
        r"d/manifest.json has no 'action_spec' key",
    )
    opens_with(manifest_path, {**manifest, "action_spec": {"kind": "discrete"}}, "action_spec")
    manifest_path.write_text(json.dumps(manifest))
    opens_with(
        shard_path,
        {k: v for k, v in shard.items() if k != "files"},
        r"000001/shard.json has no 'files' key",
    )
    episode = {k: v for k, v in shard["episodes"][0].items() if k != "length"}
    opens_with(
        shard_path,
        {**shard, "episodes": [episode]},
        r"000001/shard.json has no episodes\[0\].'length' key",
    )
    shard_path.write_text(json.dumps(shard))
    assert len(EpisodeStore(tmp_path / "d")) == 2
