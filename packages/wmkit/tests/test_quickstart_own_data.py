"""`wmkit quickstart --data` on datasets wmkit did not record: LeRobot (discrete and, after
`wmkit data import`, continuous actions) and a folder of mp4s."""

import numpy as np
import yaml

from wmkit.apps.quickstart.cli import _run as quickstart
from wmkit.core import ActionSpec, load_pretrained
from wmkit.core.data.info import _run as data_cli
from wmkit.core.testing import write_lerobot_dataset
from wmkit.core.video_io import write_video


def _episodes(discrete: bool, n: int = 6, length: int = 16, size: int = 48) -> list[dict]:
    rng = np.random.default_rng(0)
    out = []
    for _ in range(n):
        frames = np.zeros((length, size, size, 3), np.uint8)
        x = rng.integers(0, size - 8, length)
        for t in range(length):  # a moving block, so frames change
            frames[t, 8:16, x[t] : x[t] + 8] = 255
        actions = rng.integers(0, 15, (length, 1)) if discrete else rng.uniform(-1, 1, (length, 2))
        out.append({"frames": frames, "actions": actions, "rewards": rng.random(length)})
    return out


def test_quickstart_on_a_lerobot_dataset_with_a_discrete_spec_from_the_command_line(tmp_path):
    data = write_lerobot_dataset(tmp_path / "game", _episodes(True))
    out = tmp_path / "qs"
    spec = '{"kind": "discrete", "n": 15}'
    args = ["--tiny", "--out", str(out), "--data", str(data), "--action-spec", spec]
    assert quickstart(args) == 0
    world_config = yaml.safe_load((out / "configs" / "world.yaml").read_text())
    data_args = world_config["data"]["init_args"]
    assert data_args["path"] == str(data) and data_args["kind"] == "lerobot"
    # the spec reaches the reader and the model as a YAML mapping, and it trains from there
    assert data_args["source_kwargs"]["action_spec"] == {"kind": "discrete", "n": 15, "bins": 256}
    assert data_args["resolution"] == 32
    world = load_pretrained(out / "world")
    assert world.action_spec == ActionSpec.discrete(15)
    assert (out / "report" / "report.html").is_file()
    assert not (tmp_path / "runs").exists()  # nothing recorded


def test_quickstart_on_an_imported_continuous_lerobot_dataset(tmp_path):
    src = write_lerobot_dataset(tmp_path / "arm", _episodes(False), version="v3.0")
    store = tmp_path / "arm-store"
    assert data_cli(["import", str(src), "--out", str(store), "--no-progress"]) == 0
    out = tmp_path / "qs"
    assert quickstart(["--tiny", "--out", str(out), "--data", str(store)]) == 0
    assert load_pretrained(out / "world").action_spec.kind == "continuous"
    assert (out / "report" / "report.html").is_file()


def test_quickstart_on_action_free_videos_trains_the_tokenizer_only(tmp_path, capsys):
    for i, ep in enumerate(_episodes(True)):
        write_video(tmp_path / "videos" / f"{i}.mp4", ep["frames"], fps=10, lossless=True)
    out = tmp_path / "qs"
    assert quickstart(["--tiny", "--out", str(out), "--data", str(tmp_path / "videos")]) == 0
    assert (out / "tokenizer" / "config.json").is_file() and not (out / "world").exists()
    assert "wmkit latent-action" in capsys.readouterr().out
