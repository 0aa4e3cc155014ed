import yaml

from wmkit.core.data.datamodule import EpisodeDataModule
from wmkit.core.testing import ToyWorldModel, moving_squares
from wmkit.eval.cli import _clips, _data_options, _parser, main


def _dataset(root):
    eps = moving_squares(num_episodes=10, length=8, size=16, seed=1)
    eps.save(root, fps=4, frame_format="npz")
    return eps.action_spec


def test_rollout_evaluates_the_runs_held_out_episodes(tmp_path):
    spec = _dataset(tmp_path / "data")
    init = {"path": str(tmp_path / "data"), "split": [0.6, 0.2, 0.2], "split_seed": 5,
            "clip_length": 4}  # fmt: skip
    config = tmp_path / "world.yaml"
    data = {"class_path": "wmkit.core.data.datamodule.EpisodeDataModule", "init_args": init}
    config.write_text(yaml.safe_dump({"data": data}))
    trained = EpisodeDataModule(**init)
    trained.setup("fit")
    args = _parser().parse_args(["rollout", "--world", "w", "--config", str(config)])
    _, clips = _clips(_data_options(args), "test", 4)
    assert clips.episodes == trained.datasets["test"].episodes
    # the library defaults would have held out other episodes
    default = _parser().parse_args(["rollout", "--world", "w", "--data", init["path"]])
    _, other = _clips(_data_options(default), "test", 4)
    assert other.episodes != clips.episodes
    # flags override the config
    args = _parser().parse_args(
        ["rollout", "--world", "w", "--config", str(config), "--split-seed", "0",
         "--split-fractions", "0.9", "0.05", "0.05"]
    )  # fmt: skip
    assert _clips(_data_options(args), "test", 4)[1].episodes == other.episodes

    ToyWorldModel(spec, hidden=8).save_pretrained(tmp_path / "world")
    out = tmp_path / "eval"
    code = main([
        "rollout", "--world", str(tmp_path / "world"), "--config", str(config), "--context",
        "2", "--horizon", "2", "--batch-size", "2", "--lpips", "off", "--out", str(out),
    ])  # fmt: skip
    assert code == 0 and (out / "report.html").is_file()
