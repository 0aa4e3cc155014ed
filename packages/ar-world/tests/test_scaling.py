"""Scaling wiring on CPU: gradient checkpointing, bf16 mixed precision, DDP; FSDP's CPU error
(and, where a CUDA GPU is present, FSDP itself on one GPU).

No GPU here, so these prove the wiring, not the speed: checkpointing changes neither the loss
nor the gradients and really recomputes the blocks; ``--trainer.precision bf16-mixed`` trains
through ``run_stage`` with the model running in bf16; ``ddp_fork`` on two CPU processes (gloo)
keeps both ranks' parameters equal although they saw different batches.
"""

import json
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from helpers import tiny_model
from rank_probe import RankProbe

from wmkit.ar_world import ARWorldModel
from wmkit.ar_world.lit import ARWorldModelModule
from wmkit.ar_world.transformer import Block, RMSNorm
from wmkit.core import ActionSpec
from wmkit.core.stage import run_stage
from wmkit.core.testing import check_config_runs
from wmkit.core.testing.toy_lit import MovingSquaresDataModule

TINY = Path(__file__).resolve().parents[1] / "configs" / "tiny.yaml"
QUIET = ["--trainer.enable_progress_bar=false", "--trainer.logger=false"]


def _batch():
    data = MovingSquaresDataModule(num_episodes=16, length=6, size=16, batch_size=8)
    data.setup()
    return next(iter(data.train_dataloader()))


def _module(**kwargs) -> ARWorldModelModule:
    model = tiny_model(ActionSpec.discrete(5), max_frames=6, **kwargs).train()
    return ARWorldModelModule(model, action_dropout=0.0)


def _count_block_calls(model: ARWorldModel) -> list[int]:
    """Counts block entries (pre-hooks: a checkpoint's recompute stops early, once the saved
    tensors the backward needs exist, so a block's forward hook may not fire there)."""
    calls = [0]
    for block in model.transformer.blocks:
        block.register_forward_pre_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
    return calls


def _saved_bytes(fn):
    """Run ``fn`` and return (its result, bytes of tensors autograd saved for backward)."""
    saved = [0]

    def pack(t):
        saved[0] += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn()
    return out, saved[0]


def test_gradient_checkpointing_same_loss_and_grads_and_recomputes():
    batch = _batch()
    plain, ckpt = _module(), _module(gradient_checkpointing=True)
    ckpt.model.load_state_dict(plain.model.state_dict())
    depth = len(plain.model.transformer.blocks)
    assert depth >= 2 and all(isinstance(b, Block) for b in ckpt.model.transformer.blocks)

    results = {}
    for name, module in [("plain", plain), ("ckpt", ckpt)]:
        calls = _count_block_calls(module.model)
        losses, saved = _saved_bytes(lambda m=module: m.losses(batch))
        forward_calls = calls[0]
        losses["loss"].backward()
        grads = {
            n: p.grad.clone() for n, p in module.model.named_parameters() if p.grad is not None
        }
        results[name] = (losses, grads, forward_calls, calls[0] - forward_calls, saved)

    (lp, gp, fp, bp, sp), (lc, gc, fc, bc, sc) = results["plain"], results["ckpt"]
    for key in lp:
        torch.testing.assert_close(lc[key], lp[key], rtol=1e-6, atol=1e-6)
    assert gc.keys() == gp.keys() and len(gp) == len(list(plain.model.parameters()))
    for name in gp:
        torch.testing.assert_close(gc[name], gp[name], rtol=1e-5, atol=1e-6, msg=name)
    assert (fp, bp) == (depth, 0)  # no recompute without checkpointing
    assert (fc, bc) == (depth, depth)  # every block run again in the backward pass
    assert sc < 0.6 * sp  # block activations not kept for backward

    # inference is unaffected: no checkpoint (and no recompute) in eval mode or under no_grad
    ckpt.model.eval()
    calls = _count_block_calls(ckpt.model)
    with torch.no_grad():
        torch.testing.assert_close(ckpt.losses(batch)["loss"], plain.losses(batch)["loss"])
    assert calls[0] == depth


def test_bf16_autocast_forward_close_to_fp32():
    batch = _batch()
    model = tiny_model(ActionSpec.discrete(5), max_frames=6)
    tokens, _ = model.encode_clip(batch["frames"])
    with torch.no_grad():
        ref = model(tokens, batch["actions"])
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = model(tokens, batch["actions"])
    assert ref.frame_logits.dtype == torch.float32
    assert low.frame_logits.dtype == torch.bfloat16  # autocast really ran the matmuls in bf16
    logits = low.frame_logits.float()
    assert torch.isfinite(logits).all()
    scale = ref.frame_logits.abs().max().item()
    torch.testing.assert_close(logits, ref.frame_logits, rtol=0.05, atol=0.05 * scale)
    agree = (logits.argmax(-1) == ref.frame_logits.argmax(-1)).float().mean()
    assert agree > 0.9
    torch.testing.assert_close(low.reward.float(), ref.reward, rtol=0.05, atol=0.05)


def test_rmsnorm_in_bf16_equals_the_float32_formula():
    norm = RMSNorm(64)
    torch.manual_seed(0)
    with torch.no_grad():
        norm.weight.normal_()
    x = (torch.randn(3, 5, 64) * 30).bfloat16()  # large values: bf16 squares would round badly
    w = norm.weight.bfloat16().float()
    xf = x.float()
    ref = (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + norm.eps) * w).bfloat16()
    out = norm.bfloat16()(x)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out, ref, rtol=0, atol=0)


def test_bf16_mixed_fit_through_run_stage(tmp_path):
    probe = json.dumps({"class_path": "rank_probe.RankProbe", "init_args": {"out": str(tmp_path)}})
    overrides = [
        "--trainer.precision=bf16-mixed", "--trainer.accelerator=cpu",
        f"--trainer.callbacks+={probe}",
    ]  # fmt: skip
    fit, test = check_config_runs(TINY, tmp_path, *overrides, fast_dev_run=2)
    assert str(fit.trainer.precision) == "bf16-mixed"
    assert torch.isfinite(fit.trainer.callback_metrics["train/loss"])
    assert torch.isfinite(test.trainer.callback_metrics["test/loss"])
    record = torch.load(tmp_path / "rank0.pt")
    # the network's forward in training really ran under bf16 autocast
    assert record["logit_dtypes"] == [torch.bfloat16] * 2
    assert torch.isfinite(torch.tensor(record["losses"])).all()
    assert not torch.equal(record["start"], record["end"])  # the optimizer stepped
    assert all(p.dtype == torch.float32 for p in fit.model.parameters())  # fp32 master weights


def test_ddp_two_cpu_ranks_keep_equal_parameters(tmp_path):
    """Two CPU processes (gloo) through ``run_stage``: each rank sees different batches, and
    the all-reduced gradients keep their parameters equal. ``ddp_fork`` (~1 s) rather than
    ``ddp_spawn``, whose two fresh interpreters re-import torch and Lightning (38 s measured
    on this shared 2-core machine); the DDP wrapper, sampler and gloo all-reduce are the
    same. Plain ``ddp`` would re-launch ``sys.argv`` (pytest itself) per rank."""
    argv = [
        "fit", "-c", str(TINY), "--trainer.fast_dev_run=2", "--trainer.accelerator=cpu",
        "--trainer.strategy=ddp_fork", "--trainer.devices=2", *QUIET,
        f"--trainer.default_root_dir={tmp_path}",
    ]  # fmt: skip
    cli = run_stage(None, None, argv, trainer_defaults={"callbacks": [RankProbe(str(tmp_path))]})
    assert cli.trainer.state.finished
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt") for r in range(2))
    assert r0["world_size"] == r1["world_size"] == 2
    assert len(r0["batches"]) == len(r1["batches"]) == 2
    assert not torch.equal(r0["batches"][0], r1["batches"][0])  # DistributedSampler split
    torch.testing.assert_close(r0["start"], r1["start"], rtol=0, atol=0)  # same init (seed)
    assert not torch.equal(r0["start"], r0["end"])  # trained
    torch.testing.assert_close(r0["end"], r1["end"])  # gradients were synchronised
    # the launcher hands rank 0's weights back to the main process
    torch.testing.assert_close(
        torch.cat([p.detach().flatten() for p in cli.model.parameters()]), r0["end"]
    )


def test_fsdp_on_cpu_raises_lightnings_documented_error(tmp_path):
    """Lightning's FSDPStrategy needs CUDA: on CPU it refuses before building anything."""
    argv = [
        "fit", "-c", str(TINY), "--trainer.fast_dev_run=1", "--trainer.accelerator=cpu",
        "--trainer.strategy=fsdp", *QUIET, f"--trainer.default_root_dir={tmp_path}",
    ]  # fmt: skip
    with pytest.raises(ValueError, match="`fsdp` requires a GPU accelerator"):
        run_stage(None, None, argv)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_fsdp_bf16_fit_on_one_gpu(tmp_path):
    """FSDP (one rank, full sharding of one device's parameters) with bf16-mixed through
    ``run_stage``: the model trains, the loss stays finite."""
    probe = json.dumps({"class_path": "rank_probe.RankProbe", "init_args": {"out": str(tmp_path)}})
    argv = [
        "fit", "-c", str(TINY), "--trainer.fast_dev_run=3", "--trainer.accelerator=gpu",
        "--trainer.devices=1", "--trainer.strategy=fsdp", "--trainer.precision=bf16-mixed",
        f"--trainer.callbacks+={probe}", *QUIET, f"--trainer.default_root_dir={tmp_path}",
    ]  # fmt: skip
    cli = run_stage(None, None, argv)
    assert cli.trainer.state.finished
    assert type(cli.trainer.strategy).__name__ == "FSDPStrategy"
    record = torch.load(tmp_path / "rank0.pt")
    assert torch.isfinite(torch.tensor(record["losses"])).all()
    # the sharded optimizer stepped (order-free: FSDP may flatten and pad the parameters)
    assert float((record["start"] ** 2).sum()) != float((record["end"] ** 2).sum())
