import pytest
import yaml

from wmkit.core.data import data_options


def test_data_options_read_the_data_block_with_datamodule_defaults(tmp_path):
    config = tmp_path / "world.yaml"
    init = {"path": "data/game", "kind": "lerobot", "split": [0.8, 0.1, 0.1],
            "source_kwargs": {"action_spec": {"kind": "discrete", "n": 15}}}  # fmt: skip
    config.write_text(yaml.safe_dump({"model": {}, "data": {"class_path": "x", "init_args": init}}))
    opts = data_options(config)
    assert opts == {"path": "data/game", "kind": "lerobot", "split": [0.8, 0.1, 0.1],
                    "split_seed": 0, "resolution": None, "frame_skip": 1,
                    "source_kwargs": {"action_spec": {"kind": "discrete", "n": 15}}}  # fmt: skip


def test_data_options_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="no config file"):
        data_options(tmp_path / "missing.yaml")
    config = tmp_path / "model_only.yaml"
    config.write_text(yaml.safe_dump({"model": {}}))
    with pytest.raises(ValueError, match="model_only.yaml has no 'data' block"):
        data_options(config)
    config.write_text(yaml.safe_dump({"data": {"init_args": {"batch_size": 2}}}))
    with pytest.raises(ValueError, match="names no dataset 'path'"):
        data_options(config)
