"""PatchVQTokenizer and PatchVQModule: conformance, exactness and shift equivariance on tiled
frames, k-means, clear errors, save/load, Lightning fitting with re-seeding and export."""

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from wmkit.core.export import ExportPretrained

sys.path.insert(0, str(Path(__file__).parent))
from tokenizer_lit_helpers import clip_loader, cpu_trainer

from wmkit.core import load_pretrained
from wmkit.core.testing import TokenizerTests
from wmkit.core.video import to_float_video
from wmkit.tokenizers import PatchVQModule, PatchVQTokenizer

FIXTURE = Path(__file__).parent / "fixtures" / "crafter_clips.npz"


def tiled_world(b: int = 2, t: int = 3, tiles: int = 6, textures: int = 5, seed: int = 0):
    """Frames made of ``textures`` random 4x4 sprites on a ``tiles``² grid, each frame the
    previous one shifted right by one tile (a new column enters on the left) →
    ``(video [B, T, 3, 4·tiles, 4·tiles], tile map [B, T, tiles, tiles])``."""
    gen = torch.Generator().manual_seed(seed)
    sprites = torch.rand(textures, 3, 4, 4, generator=gen) * 2 - 1
    world = torch.randint(0, textures, (b, tiles, tiles + t), generator=gen)
    maps = torch.stack([world[:, :, t - 1 - i : t - 1 - i + tiles] for i in range(t)], dim=1)
    video = sprites[maps]  # [B, T, h, w, 3, 4, 4]
    video = video.permute(0, 1, 4, 2, 5, 3, 6).reshape(b, t, 3, 4 * tiles, 4 * tiles)
    return video.contiguous(), maps


def fitted(codebook_size: int = 8, **kw) -> PatchVQTokenizer:
    video, _ = tiled_world(**kw)
    tok = PatchVQTokenizer(patch=4, codebook_size=codebook_size)
    tok.fit(video)
    return tok


class TestPatchVQ(TokenizerTests):
    def make_model(self):
        return fitted()

    def make_inputs(self):
        return tiled_world(seed=1)[0]


def test_exact_on_tiles_and_tokens_shift_with_the_world():
    video, maps = tiled_world(b=2, t=4, tiles=6, textures=5)
    tok = PatchVQTokenizer(patch=4, codebook_size=8)
    assert tok.fit(video) < 1e-10  # 5 distinct patches, 8 codes: every patch has its own
    ids = tok.encode(video).values  # [B, T, 6, 6]
    assert torch.allclose(tok.decode(ids), video, atol=1e-6)
    # one id per sprite: the id map is the tile map up to a relabelling
    pairs = set(zip(maps.flatten().tolist(), ids.flatten().tolist(), strict=True))
    assert len(pairs) == len({m for m, _ in pairs}) == 5
    # the world moved one tile right per frame: so did the tokens
    assert torch.equal(ids[:, 1:, :, 1:], ids[:, :-1, :, :-1])


def test_kmeans_lowers_the_distortion_and_more_codes_help():
    frames = to_float_video(np.load(FIXTURE)["frames"])  # real Crafter, [4, 9, 3, 32, 32]
    one = PatchVQTokenizer(4, 32).fit(frames, iterations=1)
    many = PatchVQTokenizer(4, 32).fit(frames, iterations=15)
    bigger = PatchVQTokenizer(4, 128).fit(frames, iterations=15)
    assert many < one
    assert bigger < 0.6 * many
    tok = PatchVQTokenizer(4, 128)
    mse = tok.fit(frames, iterations=15)
    recon = tok.decode(tok.encode(frames))
    assert torch.allclose((recon - frames).square().mean(), torch.tensor(mse), rtol=1e-3)


def test_fit_is_deterministic_under_its_seed():
    video, _ = tiled_world(textures=12)
    a, b, c = (PatchVQTokenizer(4, 6) for _ in range(3))
    a.fit(video, seed=3), b.fit(video, seed=3), c.fit(video, seed=4)
    assert torch.equal(a.codebook, b.codebook)
    assert not torch.equal(a.codebook, c.codebook)


def test_clear_errors():
    tok = PatchVQTokenizer(patch=4, codebook_size=8)
    video, _ = tiled_world()
    with pytest.raises(RuntimeError, match="no codebook yet"):
        tok.encode(video)
    tok.fit(video)
    with pytest.raises(ValueError, match="multiples of patch=4"):
        tok.encode(video[..., :22])
    with pytest.raises(ValueError, match="3 channels"):
        tok.encode(video[:, :, :1])
    with pytest.raises(ValueError, match=r"in \[0, 8\)"):
        tok.decode(torch.full((1, 1, 6, 6), 8))
    with pytest.raises(ValueError, match="long"):
        tok.decode(torch.zeros(1, 1, 6, 6))
    with pytest.raises(ValueError, match="codebook_size"):
        PatchVQTokenizer(codebook_size=1)


def test_save_load_keeps_the_codebook(tmp_path):
    tok = fitted()
    tok.save_pretrained(tmp_path / "vq")
    again = load_pretrained(tmp_path / "vq")
    assert isinstance(again, PatchVQTokenizer) and bool(again.fitted)
    assert torch.equal(again.codebook, tok.codebook)


def test_module_seeds_by_kmeans_then_lowers_the_loss_and_exports(tmp_path):
    frames = to_float_video(np.load(FIXTURE)["frames"])
    tok = PatchVQTokenizer(4, 64)
    module = PatchVQModule(tok, lr=3e-3, kmeans_iterations=2, reseed_every=0,
                           export_dir=str(tmp_path / "export"))  # fmt: skip
    batch = frames[:2]
    tok_first = PatchVQTokenizer(4, 64)
    tok_first.fit(batch, iterations=2)
    trainer = cpu_trainer(max_steps=30, default_root_dir=tmp_path, callbacks=[ExportPretrained()])
    trainer.fit(module, clip_loader(frames, 20))
    assert int(module.train_steps) == 30
    after = float((tok.decode(tok.encode(frames)) - frames).square().mean())
    before = float((tok_first.decode(tok_first.encode(frames)) - frames).square().mean())
    assert after < before  # gradient steps on the k-means objective improved the seed
    exported = PatchVQTokenizer.from_pretrained(tmp_path / "export")
    assert torch.equal(exported.codebook, tok.codebook)


def test_module_reseeds_dead_codes_on_the_worst_patches(tmp_path):
    frames = to_float_video(np.load(FIXTURE)["frames"])
    tok = PatchVQTokenizer(4, 64)
    tok.fit(frames)
    with torch.no_grad():
        tok.codebook[:8] = 50.0  # far outside [-1, 1]: no patch picks these codes
    module = PatchVQModule(tok, lr=1e-9, reseed_every=2)
    cpu_trainer(max_steps=2, default_root_dir=tmp_path).fit(module, clip_loader(frames, 2))
    assert tok.codebook[:8].abs().max() <= 1.0  # moved onto real patches
    used = tok.encode(frames).values.unique()
    assert set(range(8)) & set(used.tolist())


def test_module_seeds_from_several_batches_before_the_first_step(tmp_path):
    """A seed from one batch knows only that batch's scenes; ``seed_batches`` widens it."""
    frames = to_float_video(np.load(FIXTURE)["frames"])  # [N, T, C, H, W] clips
    errors = {}
    for seed_batches in (1, len(frames) // 2):
        torch.manual_seed(0)
        tok = PatchVQTokenizer(4, 64)
        module = PatchVQModule(tok, lr=1e-9, kmeans_iterations=5, seed_batches=seed_batches,
                               reseed_every=0)  # fmt: skip
        cpu_trainer(max_steps=1, default_root_dir=tmp_path).fit(module, clip_loader(frames))
        assert bool(tok.fitted)
        errors[seed_batches] = float((tok.decode(tok.encode(frames)) - frames).square().mean())
    assert errors[len(frames) // 2] < 0.8 * errors[1]
    with pytest.raises(ValueError, match="seed_batches"):
        PatchVQModule(PatchVQTokenizer(4, 64), seed_batches=0)
