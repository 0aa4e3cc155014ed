"""Training module: the loss goes down on a fixed batch; collapse metrics; LPIPS optional."""

import warnings

import torch

from wmkit.core import to_float_video
from wmkit.core.testing import cpu_trainer, moving_squares
from wmkit.latent_action import LatentActionAutoencoder, LatentActionModule, code_statistics


def _batch():
    eps = moving_squares(8, 4, 16, seed=3)
    return {"frames": to_float_video(eps.frames), "actions": torch.from_numpy(eps.actions)}


def test_loss_goes_down_on_a_fixed_batch_and_ignores_actions():
    torch.manual_seed(0)
    module = LatentActionModule(LatentActionAutoencoder.from_size("tiny"), lr=3e-3)
    opt = module.configure_optimizers()
    batch = _batch()
    first = module._losses(batch)
    for _ in range(40):
        opt.zero_grad()
        module._losses(batch)["loss"].backward()
        opt.step()
    last = module._losses(batch, shuffled=True)
    assert last["loss"] < 0.5 * first["loss"]
    assert last["recon_mse"] < last["copy_last_mse"]
    assert last["psnr"] > last["psnr_shuffled"]  # the latents carry the motion
    assert {"perplexity", "usage"} <= set(last)
    no_actions = module._losses({"frames": batch["frames"]})
    torch.testing.assert_close(no_actions["loss"], module._losses(batch)["loss"])


def test_vq_variant_trains_with_commitment_loss():
    torch.manual_seed(0)
    module = LatentActionModule(LatentActionAutoencoder.from_size("tiny", quantizer="vq"))
    losses = module._losses(_batch())
    assert losses["loss"] > losses["recon_mse"]  # commitment term included


def test_code_statistics():
    ids = torch.tensor([[0, 1], [2, 3]])
    stats = code_statistics(ids, 8)
    torch.testing.assert_close(stats["perplexity"], torch.tensor(4.0))
    torch.testing.assert_close(stats["usage"], torch.tensor(0.5))
    collapsed = code_statistics(torch.zeros(5, 4, dtype=torch.long), 8)
    torch.testing.assert_close(collapsed["perplexity"], torch.tensor(1.0))


def test_lpips_is_optional():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        module = LatentActionModule(LatentActionAutoencoder.from_size("tiny"), lpips_weight=0.1)
    if module._lpips is None:  # LPIPS module or its weights missing: warned and skipped
        assert any("LPIPS" in str(w.message) for w in caught)
    assert torch.isfinite(module._losses(_batch())["loss"])


def test_fit_exports_pretrained(tmp_path):

    from wmkit.core import load_pretrained
    from wmkit.core.export import ExportPretrained
    from wmkit.core.testing.toy_lit import MovingSquaresDataModule

    module = LatentActionModule(
        LatentActionAutoencoder.from_size("tiny"), export_dir=str(tmp_path / "lam")
    )
    trainer = cpu_trainer(
        fast_dev_run=1,
        callbacks=[ExportPretrained()],  # what `wmkit latent-action fit` adds
    )
    trainer.fit(module, MovingSquaresDataModule(num_episodes=10, length=3, size=16))
    loaded = load_pretrained(tmp_path / "lam")
    assert isinstance(loaded, LatentActionAutoencoder)
