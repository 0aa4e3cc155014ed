"""The stage helper turns a LightningModule + DataModule into `wmkit <stage> fit|test`."""

import pickle
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import yaml

from wmkit.core import ActionSpec, load_pretrained, make_stage, run_stage
from wmkit.core.action_spec_check import check_action_specs
from wmkit.core.testing import check_config_runs, cpu_trainer
from wmkit.core.testing.toy_lit import MovingSquaresDataModule, ToyWorldModelModule
from wmkit.core.testing.toys import ToyWorldModel

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
QUIET = ["--trainer.enable_progress_bar=false", "--trainer.logger=false"]


def test_every_shipped_config_fits_and_tests(tmp_path):
    configs = sorted(CONFIGS.glob("*.yaml"))
    assert configs
    for cfg in configs:
        check_config_runs(cfg, tmp_path)


def test_make_stage_command_runs_fit_and_injects_network(tmp_path):
    stage = make_stage(
        "toy world model",
        model_class=lambda: ToyWorldModelModule,
        datamodule_class=lambda: MovingSquaresDataModule,
    )
    assert stage.help == "toy world model"
    code = stage.run(
        [
            "fit",
            "-c",
            str(CONFIGS / "toy_world_model.yaml"),
            "--trainer.fast_dev_run=2",
            f"--trainer.default_root_dir={tmp_path}",
            "--model.init_args.model.init_args.hidden=8",
            *QUIET,
        ]
    )
    assert code == 0


def test_model_class_picked_by_path_and_checked(tmp_path):
    with pytest.raises(SystemExit):  # a class that is not a subclass of the stage's base
        run_stage(
            ToyWorldModelModule,
            MovingSquaresDataModule,
            [
                "fit",
                "-c",
                str(CONFIGS / "toy_world_model.yaml"),
                "--model.class_path=lightning.LightningModule",
                "--trainer.fast_dev_run=1",
            ],
        )


def test_print_config(capsys):
    with pytest.raises(SystemExit) as exit_info:
        run_stage(
            None, None, ["fit", "-c", str(CONFIGS / "toy_world_model.yaml"), "--print_config"]
        )
    assert exit_info.value.code == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["model"]["class_path"].endswith("ToyWorldModelModule")
    assert printed["model"]["init_args"]["model"]["init_args"]["action_spec"]["n"] == 5


def test_resume_continues_from_last_checkpoint(tmp_path):
    ckpt_dir = tmp_path / "ckpt"
    common = [
        "-c",
        str(CONFIGS / "toy_world_model.yaml"),
        f"--trainer.default_root_dir={tmp_path}",
        "--trainer.limit_val_batches=0",
        *QUIET,
        "--trainer.callbacks+=lightning.pytorch.callbacks.ModelCheckpoint",
        f"--trainer.callbacks.dirpath={ckpt_dir}",
        "--trainer.callbacks.save_last=true",
    ]
    first = run_stage(None, None, ["fit", *common, "--trainer.max_epochs=1"])
    steps_one_epoch = first.trainer.global_step
    assert (ckpt_dir / "last.ckpt").is_file() and steps_one_epoch > 0
    second = run_stage(
        None,
        None,
        ["fit", *common, "--trainer.max_epochs=2", f"--ckpt_path={ckpt_dir / 'last.ckpt'}"],
    )
    assert second.trainer.global_step == 2 * steps_one_epoch
    assert second.trainer.current_epoch == 2
    from wmkit.core.random_state import RandomStateCheckpoint

    saved = torch.load(ckpt_dir / "last.ckpt", weights_only=True)["callbacks"]
    assert any("RandomStateCheckpoint" in key for key in saved)  # the stage adds it
    assert sum(isinstance(c, RandomStateCheckpoint) for c in second.trainer.callbacks) == 1


def test_training_beats_copy_last_frame():
    """The toy world model learns the moving squares: its next-frame error falls below copying."""
    torch.manual_seed(0)
    data = MovingSquaresDataModule(num_episodes=40, length=8, size=16, batch_size=8)
    module = ToyWorldModelModule(ToyWorldModel(ActionSpec.discrete(5), hidden=32), lr=3e-3)
    trainer = cpu_trainer(max_epochs=15)
    trainer.fit(module, data)
    metrics = trainer.validate(module, data, verbose=False)[0]
    assert metrics["val/frame_mse"] < 0.6 * metrics["val/copy_last_mse"]


def test_fit_exports_a_pretrained_directory_and_export_rebuilds_it_from_the_checkpoint(tmp_path):
    stage = make_stage("toy", model_class=lambda: ToyWorldModelModule)
    common = ["-c", str(CONFIGS / "toy_world_model.yaml"), "--data.init_args.num_episodes=8",
              "--trainer.limit_val_batches=0", *QUIET]  # fmt: skip
    ckpt_dir = tmp_path / "ckpt"
    assert stage.run([
        "fit", *common, "--trainer.max_steps=3", f"--trainer.default_root_dir={tmp_path}",
        "--trainer.callbacks+=lightning.pytorch.callbacks.ModelCheckpoint",
        f"--trainer.callbacks.dirpath={ckpt_dir}", "--trainer.callbacks.save_last=true",
    ]) == 0  # fmt: skip
    exported = load_pretrained(tmp_path / "pretrained")  # the default: <log dir>/pretrained
    assert isinstance(exported, ToyWorldModel)
    assert stage.run(["fit", *common, "--trainer.max_steps=1", f"--export_dir={tmp_path / 'x'}",
                      f"--trainer.default_root_dir={tmp_path / 'other'}"]) == 0  # fmt: skip
    assert (tmp_path / "x" / "model.safetensors").is_file()
    assert not (tmp_path / "other" / "pretrained").exists()

    out = tmp_path / "from_ckpt"
    assert stage.run(["export", *common, "--ckpt_path", str(ckpt_dir / "last.ckpt"),
                      "--out", str(out)]) == 0  # fmt: skip
    again = load_pretrained(out)
    for (name, a), b in zip(exported.state_dict().items(), again.state_dict().values()):
        assert torch.equal(a, b), name
    fresh = ToyWorldModel(ActionSpec.discrete(5), hidden=32)
    assert any(not torch.equal(a, b) for a, b in
               zip(fresh.state_dict().values(), again.state_dict().values()))  # fmt: skip


class _RunsCodeWhenUnpickled:
    """Unpickles into ``open(path, "w")``: a file appears if the checkpoint is unpickled."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (str(self.path), "w"))


def test_export_refuses_a_checkpoint_whose_unpickling_runs_code(tmp_path):
    stage = make_stage("toy", model_class=lambda: ToyWorldModelModule)
    bad = tmp_path / "bad.ckpt"
    marker = tmp_path / "ran"
    torch.save({"state_dict": {}, "payload": _RunsCodeWhenUnpickled(marker)}, bad)
    with pytest.raises(ValueError, match="weights_only=True refused it"):
        stage.run(["export", "-c", str(CONFIGS / "toy_world_model.yaml"), *QUIET,
                   "--ckpt_path", str(bad), "--out", str(tmp_path / "out")])  # fmt: skip
    assert not marker.exists() and not (tmp_path / "out").exists()


def test_an_action_spec_mismatch_stops_fit_and_test_naming_both(tmp_path):
    """A dataset with fewer actions than the model takes used to train silently."""
    argv = [
        "-c",
        str(CONFIGS / "toy_world_model.yaml"),
        "--model.init_args.model.init_args.action_spec.n=7",  # the data has 5 moves
        "--trainer.fast_dev_run=1",
        f"--trainer.default_root_dir={tmp_path}",
        *QUIET,
    ]
    for sub in ("fit", "test"):
        with pytest.raises(ValueError) as info:
            run_stage(None, None, [sub, *argv])
        message = str(info.value)
        assert "MovingSquaresDataModule gives ActionSpec.discrete(n=5)" in message, sub
        assert "ToyWorldModelModule takes ActionSpec.discrete(n=7)" in message, sub
    spec = ActionSpec.continuous(2)
    bounds = ActionSpec.continuous(2, low=0.0)
    with pytest.raises(ValueError, match=r"gives ActionSpec\(kind='continuous'.*low=\(-1"):
        check_action_specs(SimpleNamespace(action_spec=spec), SimpleNamespace(action_spec=bounds))
    check_action_specs(SimpleNamespace(action_spec=spec), SimpleNamespace(model=None))
    check_action_specs(SimpleNamespace(), SimpleNamespace(action_spec=spec))
    frames_only = SimpleNamespace(action_spec=spec, hparams={"with_steps": False})
    check_action_specs(frames_only, SimpleNamespace(action_spec=bounds))  # no actions to compare
    with pytest.raises(ValueError, match="do not match"):
        check_action_specs(
            SimpleNamespace(action_spec=spec, hparams={"with_steps": True}),
            SimpleNamespace(action_spec=bounds),
        )


def test_checkpoints_are_read_as_weights_only(tmp_path, monkeypatch):
    """Resuming reads ``--ckpt_path`` with ``weights_only=True`` even where the environment
    asks torch for full unpickling: wmkit's checkpoint resumes, a crafted one is refused."""
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    ckpt_dir = tmp_path / "ckpt"
    common = [
        "-c",
        str(CONFIGS / "toy_world_model.yaml"),
        f"--trainer.default_root_dir={tmp_path}",
        "--trainer.limit_train_batches=2",
        "--trainer.limit_val_batches=0",
        *QUIET,
        "--trainer.callbacks+=lightning.pytorch.callbacks.ModelCheckpoint",
        f"--trainer.callbacks.dirpath={ckpt_dir}",
        "--trainer.callbacks.save_last=true",
    ]
    run_stage(None, None, ["fit", *common, "--trainer.max_epochs=1"])
    resumed = run_stage(None, None, ["fit", *common, "--trainer.max_epochs=2", "--ckpt_path=last"])
    assert resumed.trainer.global_step == 4
    checkpoint = torch.load(ckpt_dir / "last.ckpt", weights_only=True)
    marker = tmp_path / "code-ran"
    checkpoint["payload"] = _RunsCodeWhenUnpickled(marker)
    torch.save(checkpoint, ckpt_dir / "last.ckpt")
    with pytest.raises(pickle.UnpicklingError, match="Weights only load failed"):
        run_stage(None, None, ["fit", *common, "--trainer.max_epochs=3", "--ckpt_path=last"])
    assert not marker.exists()


def test_a_checkpoint_cannot_name_a_class_outside_wmkit_or_the_config(tmp_path, monkeypatch):
    """LightningCLI rebuilds the model from a checkpoint's hyperparameters; a class path there
    that neither wmkit nor the config names is refused before its module is imported."""
    code = tmp_path / "code"
    code.mkdir()
    (code / "wmkit_test_ckpt_side_effect.py").write_text(
        "import pathlib\n"
        "pathlib.Path(__file__).with_name('imported').touch()\n"
        "import lightning\n"
        "class Module(lightning.LightningModule):\n    pass\n"
    )
    monkeypatch.syspath_prepend(str(code))
    common = ["-c", str(CONFIGS / "toy_world_model.yaml"), f"--trainer.default_root_dir={tmp_path}"]
    first = run_stage(
        None, None, ["fit", *common, "--trainer.fast_dev_run=1", *QUIET], save_config_callback=None
    )
    first.trainer.save_checkpoint(tmp_path / "good.ckpt")
    checkpoint = torch.load(tmp_path / "good.ckpt", weights_only=True)
    assert checkpoint["hyper_parameters"]["_class_path"].startswith("wmkit.")
    good = run_stage(None, None, ["test", *common, *QUIET, f"--ckpt_path={tmp_path}/good.ckpt"])
    assert good.trainer.state.finished
    checkpoint["hyper_parameters"]["_class_path"] = "wmkit_test_ckpt_side_effect.Module"
    torch.save(checkpoint, tmp_path / "crafted.ckpt")
    with pytest.raises(ValueError, match=r"crafted.ckpt names class wmkit_test_ckpt_side_effect"):
        run_stage(None, None, ["test", *common, *QUIET, f"--ckpt_path={tmp_path}/crafted.ckpt"])
    assert not (code / "imported").exists()
    assert "wmkit_test_ckpt_side_effect" not in sys.modules
