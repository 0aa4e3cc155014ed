import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from wmkit.core.action_spec import ActionSpec
from wmkit.core.data.lerobot import LeRobotSource
from wmkit.core.data.source import EpisodeSource
from wmkit.core.testing import count_decoded_frames
from wmkit.core.video_io import write_video

FPS = 15
LENGTHS = (13, 21, 9)
TOP, WRIST = "observation.images.top", "observation.images.wrist"
_BASE = np.random.default_rng(0).integers(0, 256, (4, 4, 3), dtype=np.uint8)


def _blocks(episode: int, n: int, camera: str = TOP) -> np.ndarray:
    """4x4 constant blocks; block (0, 0) encodes (episode, frame): ``[n, 4, 4, 3]``."""
    blocks = np.repeat(_BASE[None], n, axis=0)
    blocks[:, 0, 0, :] = ((episode * 64 + np.arange(n) * 8) % 256)[:, None]
    return blocks if camera == TOP else 255 - blocks


def _frames(episode: int, camera: str = TOP) -> np.ndarray:
    """``uint8 [T, 16, 16, 3]`` frames of ``episode``; an area resize to 4 gives ``_blocks``."""
    return _blocks(episode, LENGTHS[episode], camera).repeat(4, axis=1).repeat(4, axis=2)


def _actions(episode: int) -> np.ndarray:
    t = np.arange(LENGTHS[episode], dtype=np.float32)
    return np.stack([episode + 0.1 * t, -t], axis=1)  # [T, 2]


def _rewards(episode: int) -> np.ndarray:
    return 0.5 * np.arange(LENGTHS[episode], dtype=np.float32)


def _dones(episode: int) -> np.ndarray:
    return np.arange(LENGTHS[episode]) == LENGTHS[episode] - 1


def _info(version: str, data_path: str, video_path: str) -> dict:
    video = {"dtype": "video", "shape": [16, 16, 3], "names": ["height", "width", "channels"]}
    return {
        "codebase_version": version,
        "robot_type": "toy",
        "fps": FPS,
        "chunks_size": 1000,
        "total_episodes": len(LENGTHS),
        "total_frames": sum(LENGTHS),
        "data_path": data_path,
        "video_path": video_path,
        "features": {
            TOP: video,
            WRIST: video,
            "observation.state": {"dtype": "float32", "shape": [2], "names": None},
            "action": {"dtype": "float32", "shape": [2], "names": ["x", "y"]},
            "next.reward": {"dtype": "float32", "shape": [1], "names": None},
            "next.done": {"dtype": "bool", "shape": [1], "names": None},
            "timestamp": {"dtype": "float32", "shape": [1], "names": None},
            "frame_index": {"dtype": "int64", "shape": [1], "names": None},
            "episode_index": {"dtype": "int64", "shape": [1], "names": None},
            "index": {"dtype": "int64", "shape": [1], "names": None},
            "task_index": {"dtype": "int64", "shape": [1], "names": None},
        },
    }


def _step_table(episodes: list[int], fixed_size: bool) -> pa.Table:
    first = sum(LENGTHS[: episodes[0]])
    actions = np.concatenate([_actions(e) for e in episodes])
    n = len(actions)
    vec_type = pa.list_(pa.float32(), 2) if fixed_size else pa.list_(pa.float32())
    return pa.table(
        {
            "observation.state": pa.array(list(actions), type=vec_type),
            "action": pa.array(list(actions), type=vec_type),
            "next.reward": np.concatenate([_rewards(e) for e in episodes]),
            "next.done": np.concatenate([_dones(e) for e in episodes]),
            "timestamp": np.concatenate(
                [np.arange(LENGTHS[e], dtype=np.float32) / FPS for e in episodes]
            ),
            "frame_index": np.concatenate([np.arange(LENGTHS[e]) for e in episodes]),
            "episode_index": np.concatenate([np.full(LENGTHS[e], e) for e in episodes]),
            "index": np.arange(first, first + n),
            "task_index": np.zeros(n, np.int64),
        }
    )


def _write_json(path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))


def _make_v21(root):
    data_path = "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet"
    video_path = "videos/chunk-{episode_chunk:03d}/{video_key}/episode_{episode_index:06d}.mp4"
    _write_json(root / "meta" / "info.json", _info("v2.1", data_path, video_path))
    lines = [{"episode_index": e, "tasks": ["reach"], "length": n} for e, n in enumerate(LENGTHS)]
    (root / "meta" / "episodes.jsonl").write_text("\n".join(json.dumps(r) for r in lines) + "\n")
    stats = {"action": {"min": [-5.0, -25.0], "max": [5.0, 5.0], "mean": [0, 0], "std": [1, 1]}}
    _write_json(root / "meta" / "stats.json", stats)
    for e in range(len(LENGTHS)):
        path = root / data_path.format(episode_chunk=0, episode_index=e)
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(_step_table([e], fixed_size=False), path)
        for cam in (TOP, WRIST):
            mp4 = root / video_path.format(episode_chunk=0, video_key=cam, episode_index=e)
            write_video(mp4, _frames(e, cam), fps=FPS, lossless=True, gop=8)
    return root


def _make_v30(root):
    data_path = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
    video_path = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
    _write_json(root / "meta" / "info.json", _info("v3.0", data_path, video_path))
    files = [[0, 1], [2]]  # episodes 0 and 1 share file-000; episode 2 is in file-001
    rows: dict[str, list] = {}
    for file_index, episodes in enumerate(files):
        path = root / data_path.format(chunk_index=0, file_index=file_index)
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(_step_table(episodes, fixed_size=True), path)
        for cam in (TOP, WRIST):
            mp4 = root / video_path.format(video_key=cam, chunk_index=0, file_index=file_index)
            frames = np.concatenate([_frames(e, cam) for e in episodes])
            write_video(mp4, frames, fps=FPS, lossless=True, gop=8)
        start = 0
        for e in episodes:
            row = {
                "episode_index": e,
                "tasks": ["reach"],
                "length": LENGTHS[e],
                "data/chunk_index": 0,
                "data/file_index": file_index,
                "dataset_from_index": sum(LENGTHS[:e]),
                "dataset_to_index": sum(LENGTHS[: e + 1]),
                "meta/episodes/chunk_index": 0,
                "meta/episodes/file_index": 0,
                "stats/action/min": [0.0, 0.0],
            }
            for cam in (TOP, WRIST):
                row[f"videos/{cam}/chunk_index"] = 0
                row[f"videos/{cam}/file_index"] = file_index
                row[f"videos/{cam}/from_timestamp"] = start / FPS
                row[f"videos/{cam}/to_timestamp"] = (start + LENGTHS[e]) / FPS
            start += LENGTHS[e]
            for key, value in row.items():
                rows.setdefault(key, []).append(value)
    path = root / "meta" / "episodes" / "chunk-000" / "file-000.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(rows), path)
    return root


@pytest.fixture(params=["v2.1", "v3.0"])
def dataset(request, tmp_path):
    make = _make_v21 if request.param == "v2.1" else _make_v30
    return request.param, make(tmp_path / request.param)


def test_reads_frames_steps_and_lengths(dataset):
    version, root = dataset
    src = LeRobotSource(root, done_key="next.done")
    assert isinstance(src, EpisodeSource)
    assert src.version == version and src.camera_key == TOP
    assert len(src) == 3 and src.episode_indices == [0, 1, 2]
    assert [src.episode_length(i) for i in range(3)] == list(LENGTHS)
    assert src.fps == FPS
    for episode, (start, stop) in [(1, (9, 15)), (0, (4, 13)), (2, (0, 3)), (1, (17, 21))]:
        frames = src.read_frames(episode, start, stop)
        assert np.array_equal(frames, _frames(episode)[start:stop]), (episode, start)
        steps = src.read_steps(episode, start, stop)
        assert set(steps) == {"actions", "rewards", "dones"}
        assert steps["actions"].dtype == np.float32 and steps["actions"].shape == (stop - start, 2)
        np.testing.assert_array_equal(steps["actions"], _actions(episode)[start:stop])
        np.testing.assert_array_equal(steps["rewards"], _rewards(episode)[start:stop])
        assert steps["rewards"].dtype == np.float32 and steps["dones"].dtype == bool
        np.testing.assert_array_equal(steps["dones"], _dones(episode)[start:stop])
    assert src.read_frames(1, 2, 2).shape == (0, 16, 16, 3)


def test_inferred_action_spec(dataset):
    version, root = dataset
    spec = LeRobotSource(root).action_spec
    assert spec.kind == "continuous" and spec.shape == (2,) and spec.names == ("x", "y")
    if version == "v2.1":  # from meta/stats.json
        assert spec.low == (-5.0, -25.0) and spec.high == (5.0, 5.0)
    else:  # no stats.json: min/max over every data file
        all_actions = np.concatenate([_actions(e) for e in range(3)])
        np.testing.assert_allclose(spec.low, all_actions.min(0), rtol=1e-6)
        np.testing.assert_allclose(spec.high, all_actions.max(0), rtol=1e-6)


def test_next_done_is_read_as_dones_only_when_asked(dataset):
    """LeRobot's ``next.done`` marks every episode's last frame, time limits included, so by
    default it is not read as terminations."""
    _, root = dataset
    steps = LeRobotSource(root).read_steps(1, 0, LENGTHS[1])
    assert set(steps) == {"actions", "rewards"}
    steps = LeRobotSource(root, done_key="next.done").read_steps(1, 0, LENGTHS[1])
    assert steps["dones"][-1] and not steps["dones"][:-1].any()


def test_given_spec_camera_choice_and_optional_columns(dataset):
    _, root = dataset
    spec = ActionSpec.continuous(2, low=-30.0, high=30.0)
    src = LeRobotSource(root, camera_key=WRIST, action_spec=spec, reward_key=None, done_key="x")
    assert src.action_spec is spec
    assert np.array_equal(src.read_frames(1, 10, 13), _frames(1, WRIST)[10:13])
    assert set(src.read_steps(1, 10, 13)) == {"actions"}


def test_resize(dataset):
    _, root = dataset
    src = LeRobotSource(root, resolution=4)
    got = src.read_frames(1, 3, 8)
    assert got.shape == (5, 4, 4, 3)
    assert np.array_equal(got, _blocks(1, LENGTHS[1])[3:8])


def test_late_window_seeks(dataset, monkeypatch):
    _, root = dataset
    src = LeRobotSource(root, cache_mb=0)
    counter = count_decoded_frames(monkeypatch)
    # episode 1, frames [17, 20): v2.1 file frames 17..19, v3.0 file frames 30..32
    assert np.array_equal(src.read_frames(1, 17, 20), _frames(1)[17:20])
    # at most one GOP (8) before the window, the window, and one frame to see its end;
    # decoding from the file's start would take 21 (v2.1) or 34 (v3.0) frames
    assert 0 < counter[0] <= 8 + 3 + 1


def test_episode_is_decoded_once_per_process(dataset, monkeypatch):
    import pickle

    _, root = dataset
    src = LeRobotSource(root, resolution=4)
    counter = count_decoded_frames(monkeypatch)
    assert np.array_equal(src.read_frames(1, 17, 20), _blocks(1, LENGTHS[1])[17:20])
    first = counter[0]
    assert first >= LENGTHS[1]  # the whole episode (of a shared v3.0 file: from a keyframe)
    for start, stop in [(0, 5), (9, 15), (3, 21)]:
        assert np.array_equal(src.read_frames(1, start, stop), _blocks(1, LENGTHS[1])[start:stop])
    assert counter[0] == first  # later clips of the episode decode nothing
    got = src.read_frames(1, 0, 3)
    got[:] = 0  # callers own what they get
    assert np.array_equal(src.read_frames(1, 0, 3), _blocks(1, LENGTHS[1])[:3])
    worker = pickle.loads(pickle.dumps(src))  # a DataLoader worker starts with an empty cache
    assert len(worker._frame_cache) == 0 and len(src._frame_cache) == 1
    assert np.array_equal(worker.read_frames(1, 9, 15), src.read_frames(1, 9, 15))


def test_errors(dataset, tmp_path):
    version, root = dataset
    with pytest.raises(FileNotFoundError, match="info.json"):
        LeRobotSource(tmp_path / "empty")
    with pytest.raises(ValueError, match=r"camera_key 'cam' .*available: \['observation.images"):
        LeRobotSource(root, camera_key="cam")
    with pytest.raises(ValueError, match="action_key 'act' .*available"):
        LeRobotSource(root, action_key="act")
    with pytest.raises(ValueError, match="does not fit column 'action'"):
        LeRobotSource(root, action_spec=ActionSpec.continuous(3))
    src = LeRobotSource(root)
    with pytest.raises(ValueError, match=r"window \[10, 14\) out of range for episode 0"):
        src.read_frames(0, 10, 14)
    with pytest.raises(IndexError, match="episode 3 out of range"):
        src.read_steps(3, 0, 1)
    spec = ActionSpec.continuous(2)  # no data scan at construction
    name = "episode_000000" if version == "v2.1" else "file-000"
    data = next((root / "data").rglob(f"{name}.parquet"))
    data.unlink()
    with pytest.raises(FileNotFoundError, match=f"data file .*{data.name} is missing"):
        LeRobotSource(root, action_spec=spec).read_steps(0, 0, 2)
    video = next(p for p in (root / "videos").rglob(f"{name}.mp4") if TOP in str(p))
    video.unlink()
    with pytest.raises(FileNotFoundError, match=f"video file .*{video.name}.* is missing"):
        LeRobotSource(root, action_spec=spec).read_frames(0, 0, 2)
    info = json.loads((root / "meta" / "info.json").read_text())
    info["codebase_version"] = "v1.6"
    (root / "meta" / "info.json").write_text(json.dumps(info))
    with pytest.raises(ValueError, match=r"unsupported LeRobot codebase_version 'v1.6' in .*info"):
        LeRobotSource(root)


def _game_episodes(n_episodes: int = 2, length: int = 16, width: int = 1) -> list[dict]:
    rng = np.random.default_rng(1)
    return [
        {
            "frames": rng.integers(0, 256, (length, 16, 16, 3), dtype=np.uint8),
            "actions": rng.integers(0, 15, (length, width)).astype(np.int64),
            "rewards": rng.random(length).astype(np.float32),
        }
        for _ in range(n_episodes)
    ]


def test_integer_action_column_is_discrete(tmp_path):
    from wmkit.core.testing import write_lerobot_dataset

    episodes = _game_episodes()
    n = int(max(e["actions"].max() for e in episodes)) + 1
    names = [f"a{i}" for i in range(n)]
    root = write_lerobot_dataset(tmp_path / "game", episodes, action_names=names)
    src = LeRobotSource(root)
    assert src.action_spec == ActionSpec.discrete(n, names)
    steps = src.read_steps(1, 2, 10)
    assert steps["actions"].dtype == np.int64 and steps["actions"].shape == (8,)
    np.testing.assert_array_equal(steps["actions"], episodes[1]["actions"][2:10, 0])
    # no stats.json: n from a scan of the data; names that are not one per choice dropped
    (root / "meta" / "stats.json").unlink()
    info = json.loads((root / "meta" / "info.json").read_text())
    info["features"]["action"]["names"] = ["action"]
    (root / "meta" / "info.json").write_text(json.dumps(info))
    assert LeRobotSource(root).action_spec == ActionSpec.discrete(n)
    # a given spec, as YAML gives it
    assert LeRobotSource(root, action_spec={"kind": "discrete", "n": 20}).action_spec.n == 20


def test_wide_integer_action_column_is_multi_discrete(tmp_path):
    from wmkit.core.testing import write_lerobot_dataset

    episodes = _game_episodes(width=2)
    root = write_lerobot_dataset(tmp_path / "game", episodes, version="v3.0")
    nvec = np.concatenate([e["actions"] for e in episodes]).max(0) + 1
    assert LeRobotSource(root).action_spec == ActionSpec.multi_discrete(nvec.tolist())
    steps = LeRobotSource(root).read_steps(0, 0, 16)
    np.testing.assert_array_equal(steps["actions"], episodes[0]["actions"])


def test_datamodule_takes_a_spec_mapping_in_source_kwargs(tmp_path):
    from wmkit.core.data.datamodule import EpisodeDataModule
    from wmkit.core.testing import write_lerobot_dataset

    root = write_lerobot_dataset(tmp_path / "game", _game_episodes(3))
    data = EpisodeDataModule(
        str(root), source_kwargs={"action_spec": {"kind": "discrete", "n": 15}},
        clip_length=8, batch_size=2, split=(0.34, 0.33, 0.33), samples_per_epoch=4,
    )  # fmt: skip
    assert data.action_spec == ActionSpec.discrete(15)
    data.setup("fit")
    batch = next(iter(data.train_dataloader()))
    assert batch["actions"].shape == (2, 8) and batch["actions"].dtype == torch.long
    ActionSpec.discrete(15).validate(batch["actions"])
    with pytest.raises(ValueError, match="LeRobotSource action_spec: unknown ActionSpec"):
        _ = EpisodeDataModule(str(root), source_kwargs={"action_spec": {"kind": "discrete", "m": 1}}
                              ).action_spec  # fmt: skip
