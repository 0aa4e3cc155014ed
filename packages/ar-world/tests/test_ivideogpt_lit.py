"""iVideoGPT fine-tuning (`IVideoGPTFinetuneModule`, `finetune_start`): the loss is the original
``tokenize`` labels' causal-LM loss on the parity fixtures; an action-free start gets a zero
action projection that leaves its predictions unchanged; and ``wmkit ar-world fit`` fine-tunes
the converted action-free fixture with 4-d actions: the loss falls, actions then change the
predicted frame, and the export loads with ``load_pretrained``."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import yaml

sys.path.insert(0, str(Path(__file__).parent))
from ivideogpt_cases import ACT_COND, PARITY, io, needs_fixtures, video
from ivideogpt_episodes import SPEC, write_colour_episodes

from wmkit.ar_world.cli import command
from wmkit.ar_world.convert_ivideogpt import convert_ivideogpt
from wmkit.ar_world.ivideogpt_finetune import finetune_start
from wmkit.ar_world.ivideogpt_lit import IVideoGPTFinetuneModule
from wmkit.ar_world.ivideogpt_world_model import IVideoGPTWorldModel
from wmkit.ar_world.sampling import Sampler
from wmkit.core import ActionSpec, load_pretrained
from wmkit.core.data.datamodule import EpisodeDataModule
from wmkit.core.testing import check_config_runs

pytestmark = needs_fixtures
CONFIGS = Path(__file__).resolve().parents[1] / "configs"
QUIET = ["--trainer.enable_progress_bar=false", "--trainer.logger=false"]
SPEC_DICT = {"kind": "continuous", "shape": [4], "low": [-1.0] * 4, "high": [1.0] * 4}


@pytest.fixture(scope="module")
def act_free(tmp_path_factory) -> Path:
    """The tiny action-free fixture converted with 5-frame sequences: ``OUT/world``."""
    out = tmp_path_factory.mktemp("ivideogpt") / "oxe-64-act-free"
    convert_ivideogpt(PARITY / "oxe-64-act-free", out, max_frames=5)
    return out / "world"


@pytest.fixture(scope="module")
def episodes(tmp_path_factory) -> Path:
    return write_colour_episodes(tmp_path_factory.mktemp("episodes") / "colours")


@pytest.mark.parametrize("case", ["bair-64-act-cond", "oxe-64-act-free", "oxe-64-goal-cond"])
def test_loss_is_the_original_labelled_cross_entropy(tmp_path, case):
    data = io(case)
    frames = video(case)
    if "clip_uint8" in data:  # goal case: the module rearranges the clip in time order itself
        clip = data["clip_uint8"].permute(0, 1, 4, 2, 3).float() / 127.5 - 1
        assert not torch.equal(clip, frames)
        frames = clip
    convert_ivideogpt(PARITY / case, tmp_path, max_frames=frames.shape[1])
    spec = SPEC_DICT if case in ACT_COND else None
    module = IVideoGPTFinetuneModule(str(tmp_path / "world"), spec)
    batch = {"frames": frames}
    if case in ACT_COND:
        batch["actions"] = data["actions"]
    ours = module.losses(batch)["token_ce"]
    # the original: LlamaForCausalLM's shifted loss on tokenize's labels (-100 = unlabelled)
    logits, labels = data["logits"], data["labels"]
    want = F.cross_entropy(logits[0, :-1], labels[0, 1:], ignore_index=-100)
    torch.testing.assert_close(ours, want, atol=1e-4, rtol=1e-5)


def test_an_action_free_start_gets_a_zero_projection_that_changes_nothing(act_free):
    plain = load_pretrained(act_free)
    tuned = finetune_start(act_free, SPEC_DICT)
    assert not plain.action_conditioned and tuned.action_conditioned
    assert tuned.action_spec == SPEC
    assert not tuned.transformer.action_linear.weight.any()
    assert not tuned.transformer.action_linear.bias.any()
    frames = video("oxe-64-act-free")
    latents = plain.tokenizer.encode(frames, context_frames=2)
    ctx, fut = latents.values, latents.future
    actions = torch.rand(1, frames.shape[1], 4) * 2 - 1
    torch.testing.assert_close(tuned(ctx, fut, actions), plain(ctx, fut), rtol=0, atol=0)
    assert finetune_start(act_free).action_conditioned is False


def test_finetune_start_refuses_what_it_cannot_fine_tune(tmp_path, act_free):
    with pytest.raises(ValueError, match="continuous with shape"):
        finetune_start(act_free, {"kind": "discrete", "n": 4})
    convert_ivideogpt(PARITY / "bair-64-act-cond", tmp_path / "bair", max_frames=4)
    with pytest.raises(ValueError, match="4-d actions but action_spec is 2-d"):
        finetune_start(tmp_path / "bair" / "world", ActionSpec.continuous(2, -1.0, 1.0))
    again = finetune_start(tmp_path / "bair" / "world", SPEC_DICT)  # same size: weights kept
    kept = load_pretrained(tmp_path / "bair" / "world").transformer.action_linear.weight
    torch.testing.assert_close(again.transformer.action_linear.weight, kept)
    convert_ivideogpt(PARITY / "oxe-64-goal-cond", tmp_path / "goal", max_frames=5)
    with pytest.raises(ValueError, match="goal-conditioned"):
        finetune_start(tmp_path / "goal" / "world", SPEC_DICT)
    (tmp_path / "other").mkdir()
    load_pretrained(tmp_path / "goal" / "world").tokenizer.save_pretrained(tmp_path / "other")
    with pytest.raises(ValueError, match="not an IVideoGPTWorldModel"):
        finetune_start(tmp_path / "other", SPEC_DICT)


@torch.no_grad()
def _action_effect(model: IVideoGPTWorldModel, frames: torch.Tensor) -> float:
    """Largest pixel difference between the greedy next frames after two opposite actions."""
    model.decoder.sampler = Sampler(temperature=0.0)
    state = model.reset(frames[:, :2])
    other = state.clone()
    a = torch.tensor([1.0, 1.0, -1.0, 1.0]).expand(frames.shape[0], 4)
    return (model.step(state, a).frame - model.step(other, -a).frame).abs().max().item()


def test_fit_fine_tunes_an_action_free_model_with_actions(tmp_path, act_free, episodes):
    data = EpisodeDataModule(str(episodes), clip_length=5, batch_size=4, split=(0.7, 0.15, 0.15))
    data.setup()
    batch = next(iter(data.train_dataloader()))
    start = IVideoGPTFinetuneModule(str(act_free), SPEC_DICT)
    before = start.losses(batch)["token_ce"].item()
    assert _action_effect(start.model, batch["frames"]) == 0  # zero projection: no effect yet
    export = tmp_path / "export"
    argv = [
        "fit", "-c", str(CONFIGS / "ivideogpt-finetune-tiny.yaml"), *QUIET,
        f"--model.init_args.pretrained={act_free}", f"--data.init_args.path={episodes}",
        "--trainer.max_steps=25", f"--trainer.default_root_dir={tmp_path}",
        f"--export_dir={export}",
    ]  # fmt: skip
    assert command.run(argv) == 0
    tuned = load_pretrained(export)
    assert isinstance(tuned, IVideoGPTWorldModel) and tuned.action_spec == SPEC
    after = IVideoGPTFinetuneModule(str(export)).losses(batch)["token_ce"].item()
    assert after < 0.7 * before
    assert _action_effect(tuned, batch["frames"]) > 0.1


def test_tiny_config_fits_and_tests(tmp_path, act_free, episodes):
    check_config_runs(
        CONFIGS / "ivideogpt-finetune-tiny.yaml", tmp_path,
        f"--model.init_args.pretrained={act_free}", f"--data.init_args.path={episodes}",
    )  # fmt: skip


def test_metaworld_config_takes_metaworld_actions(tmp_path, act_free):
    cfg = yaml.safe_load((CONFIGS / "ivideogpt-finetune-metaworld.yaml").read_text())
    args = cfg["model"]["init_args"]
    assert cfg["model"]["class_path"] == "wmkit.ar_world.ivideogpt_lit.IVideoGPTFinetuneModule"
    assert cfg["data"]["class_path"].endswith("EpisodeDataModule")
    spec = ActionSpec.coerce(args["action_spec"])
    spec.check_compatible(ActionSpec.continuous(4, -1.0, 1.0))  # Meta-World's Sawyer arm
    args["pretrained"] = str(act_free)  # the released model there; the tiny fixture here
    module = IVideoGPTFinetuneModule(**args)
    assert module.model.action_spec == spec
    assert module.hparams["export_dir"] == args["export_dir"]  # where ExportPretrained writes


def test_fit_fine_tunes_a_goal_conditioned_model_on_frames_only(tmp_path, episodes):
    convert_ivideogpt(PARITY / "oxe-64-goal-cond", tmp_path / "goal", max_frames=5)
    export = tmp_path / "export"
    argv = [
        "fit", "-c", str(CONFIGS / "ivideogpt-finetune-tiny.yaml"), *QUIET,
        f"--model.init_args.pretrained={tmp_path / 'goal' / 'world'}",
        "--model.init_args.action_spec=null", f"--data.init_args.path={episodes}",
        "--data.init_args.with_steps=false",  # its actions are not the model's: frames only
        "--trainer.max_steps=2", f"--trainer.default_root_dir={tmp_path}",
        f"--export_dir={export}",
    ]  # fmt: skip
    assert command.run(argv) == 0
    tuned = load_pretrained(export)
    assert tuned.goal_conditioned and not tuned.action_conditioned
    before = load_pretrained(tmp_path / "goal" / "world").transformer.state_dict()
    changed = [
        k for k, v in tuned.transformer.state_dict().items() if not torch.equal(v, before[k])
    ]
    assert changed  # it trained
