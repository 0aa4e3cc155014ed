"""Quality on held-out recorded Crafter episodes at 36x36 after a fixed wall-clock budget, with a
GIF of rollouts and a PSNR-per-step plot."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from wmkit.ar_world import ARWorldModel
from wmkit.ar_world.decoders import make_decoder
from wmkit.ar_world.lit import ARWorldModelModule
from wmkit.ar_world.sizes import transformer_spec
from wmkit.core import ActionSpec, to_float_video


def load_crafter36(args: argparse.Namespace) -> tuple[list, ActionSpec]:
    """Crafter recorded at 36x36 (``wmkit record crafter``, ``explore`` policy, 120 steps;
    recorded here when ``args.data`` has no dataset): ``[(video [1, T, 3, 36, 36], actions
    long [1, T], rewards [1, T])]`` per episode."""
    from wmkit.core.data.episode_store import EpisodeStore

    path = Path(args.data)
    if not (path / "manifest.json").is_file():
        from wmkit.core.data.record import record

        print(f"recording {args.episodes} Crafter episodes at 36x36 into {path} ...", flush=True)
        record("crafter", path, args.episodes, resolution=36, max_steps=120, policy="explore")
    store = EpisodeStore(path)
    if len(store) < args.episodes:
        raise SystemExit(f"{path} holds {len(store)} episodes; --episodes is {args.episodes}")
    out = []
    for ep in range(args.episodes):
        frames, steps = store.read_episode(ep)
        if frames.shape[1:3] != (36, 36):
            raise SystemExit(f"{path} is recorded at {frames.shape[1:3]}; this part needs 36x36")
        out.append((
            to_float_video(frames),
            torch.as_tensor(np.asarray(steps["actions"])).long()[None],
            torch.as_tensor(np.asarray(steps["rewards"])).float()[None],
        ))  # fmt: skip
    return out, store.action_spec


def _train_on_tokens(model, tokens: list, episodes: list, args: argparse.Namespace) -> int:
    """AdamW on random ``args.clip``-frame clips of precomputed tokens for ``args.budget_s``
    seconds of wall clock (50-step warm-up, cosine decay over the budget); returns steps."""
    module = ARWorldModelModule(model, action_dropout=0.0)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.95), weight_decay=0.01)
    gen = np.random.default_rng(0)
    t0, steps = time.perf_counter(), 0
    while (elapsed := time.perf_counter() - t0) < args.budget_s:
        for group in opt.param_groups:
            warm = min(1.0, (steps + 1) / 50)
            group["lr"] = args.lr * warm * 0.5 * (1 + np.cos(np.pi * elapsed / args.budget_s))
        picks = []
        for _ in range(args.batch):
            j = int(gen.integers(len(tokens)))
            s = int(gen.integers(tokens[j].shape[1] - args.clip + 1))
            picks.append((j, slice(s, s + args.clip)))
        batch = {
            "tokens": torch.cat([tokens[j][:, sl] for j, sl in picks]),
            "actions": torch.cat([episodes[j][1][:, sl] for j, sl in picks]),
            "rewards": torch.cat([episodes[j][2][:, sl] for j, sl in picks]),
        }
        losses = module.losses(batch, train=True)
        opt.zero_grad()
        losses["loss"].backward()
        opt.step()
        steps += 1
        if steps % 100 == 0:
            print(f"  step {steps} ({elapsed:.0f} s): token CE "
                  f"{losses['token_ce'].item():.3f}, accuracy {losses['token_acc'].item():.3f}",
                  flush=True)  # fmt: skip
    return steps


def _clip_metrics(pred: torch.Tensor, true: torch.Tensor) -> dict:
    """PSNR of the mean MSE and mean SSIM of ``pred`` vs ``true`` ``[N, T, C, H, W]``, next
    frame and all ``T`` steps, plus the per-step PSNR curve."""
    from wmkit.eval.frame_metrics import frame_mse, frame_ssim, psnr_from_mse

    mse, ssim_ = frame_mse(pred, true), frame_ssim(pred, true)  # [N, T]
    return {
        "psnr_1": float(psnr_from_mse(mse[:, 0].mean())), "ssim_1": float(ssim_[:, 0].mean()),
        "psnr_8": float(psnr_from_mse(mse.mean())), "ssim_8": float(ssim_.mean()),
        "psnr_per_step": [float(psnr_from_mse(m)) for m in mse.mean(0)],
    }  # fmt: skip


def _held_out_clips(
    held: list, k: int, horizon: int, stride: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Every ``stride`` frames of each held-out episode, a clip: ``k`` context frames, the
    ``k - 1`` actions between them, the ``horizon`` actions after (action ``t - 1`` leads to
    frame ``t``) and the ``horizon`` real frames they lead to."""
    ctx, ctx_a, acts, true = [], [], [], []
    for video, actions, _ in held:
        for s in range(0, video.shape[1] - k - horizon + 1, stride):
            ctx.append(video[:, s : s + k])
            ctx_a.append(actions[:, s : s + k - 1])
            acts.append(actions[:, s + k - 1 : s + k - 1 + horizon])
            true.append(video[:, s + k : s + k + horizon])
    return tuple(torch.cat(x) for x in (ctx, ctx_a, acts, true))  # type: ignore[return-value]


def crafter_quality(args: argparse.Namespace) -> dict:
    """Quality on held-out *recorded* Crafter episodes after a fixed wall-clock budget.

    Tokenizer: ``PatchVQTokenizer`` (wmkit-tokenizers; k-means over 4x4 pixel patches, one
    token per Crafter tile at 36x36, 81 tokens per frame) fitted on 16 training episodes.
    World model: ``ARWorldModel`` trained on every training episode's precomputed tokens. Every
    ``args.stride`` frames of each held-out episode starts a clip: 2 context frames, then a
    greedy ``args.horizon``-step rollout on the recorded actions, raster and diagonal. The
    baseline repeats the last context frame. Controllability: PSNR with the true actions
    minus PSNR with the actions of another clip (shuffled across clips)."""
    from wmkit.tokenizers import PatchVQTokenizer

    episodes, spec = load_crafter36(args)
    train, held = episodes[: -args.held_out], episodes[-args.held_out :]
    torch.manual_seed(0)
    tok = PatchVQTokenizer(patch=4, codebook_size=args.codes)
    t0 = time.perf_counter()
    tok.fit(torch.cat([v for v, _, _ in train[:16]], dim=1), iterations=15)
    fit_s = time.perf_counter() - t0
    tokens = [tok.encode(v).values for v, _, _ in train]
    held_video = torch.cat([v for v, _, _ in held], dim=1)
    held_ids = tok.encode(held_video).values
    recon = tok.decode(held_ids).clamp(-1, 1)
    from wmkit.eval.frame_metrics import frame_mse, psnr_from_mse

    tok_row = {
        "codes": args.codes, "fit_seconds": fit_s,
        "recon_psnr": float(psnr_from_mse(frame_mse(recon, held_video).mean())),
        "copy_token_agreement": float((held_ids[:, 1:] == held_ids[:, :-1]).float().mean()),
    }  # fmt: skip
    model = ARWorldModel(
        spec, tok, frame_size=(36, 36), transformer=transformer_spec(args.size),
        max_frames=args.clip, decoder=make_decoder(window=9, temperature=0.0),
    )  # fmt: skip
    print(f"training ar-world {args.size} ({sum(p.numel() for p in model.parameters()):,} "
          f"params) for {args.budget_s:.0f} s ...", flush=True)  # fmt: skip
    t0 = time.perf_counter()
    steps = _train_on_tokens(model, tokens, train, args)
    train_s = time.perf_counter() - t0
    model.eval()
    horizon = args.horizon
    ctx, ctx_a, acts, true = _held_out_clips(held, 2, horizon, args.stride)
    shuffled = acts.roll(1, dims=0)
    copy_last = ctx[:, -1:].expand_as(true)
    out: dict = {
        "tokenizer": tok_row, "train_steps": steps, "train_seconds": train_s,
        "clips": len(ctx), "horizon": horizon, "size": args.size,
        "params": sum(p.numel() for p in model.parameters()),
        "copy_last": _clip_metrics(copy_last, true),
    }  # fmt: skip
    shown = {"real": true, "copy last": copy_last}
    for decoding in ("raster", "diagonal"):
        model.decoder = make_decoder(decoding, window=9, temperature=0.0)
        t0 = time.perf_counter()
        with torch.no_grad():
            pred = model.rollout(ctx, acts, context_actions=ctx_a).frames
            pred_shuf = model.rollout(ctx, shuffled, context_actions=ctx_a).frames
        row = _clip_metrics(pred, true)
        row["controllability_db"] = row["psnr_8"] - _clip_metrics(pred_shuf, true)["psnr_8"]
        row["rollout_seconds"] = time.perf_counter() - t0
        out[decoding] = row
        shown[decoding] = pred
    _crafter_media(args, out, shown)
    # diagonal decoding's lag between rows: each row waits for more of the row above (the
    # tokens above-right that raster order would show), at the cost of more passes per frame
    out["offsets"] = {}
    model.decoder = make_decoder("diagonal", window=9, temperature=0.0)
    for offset in sorted(set(args.offsets) - {1}):
        model.decoder.offset = offset
        with torch.no_grad():
            row = _clip_metrics(model.rollout(ctx, acts, context_actions=ctx_a).frames, true)
        row["passes_per_frame"] = (model.layout.h - 1) * offset + model.layout.w
        out["offsets"][offset] = row
    model.decoder.offset = 1
    return out


def _crafter_media(args: argparse.Namespace, out: dict, shown: dict) -> None:
    """A GIF of four held-out clips (columns: real, copy last, raster, diagonal; 4x nearest
    upsampling) and a plot of PSNR per rollout step, next to the JSON."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from wmkit.core import frame_grid
    from wmkit.core.video_io import write_gif

    stem = Path(args.out).with_suffix("")
    n = shown["real"].shape[0]
    rows = []
    for i in range(0, n, max(1, n // 4))[:4]:
        big = [torch.nn.functional.interpolate(v[i], scale_factor=4, mode="nearest")[None]
               for v in shown.values()]  # fmt: skip
        rows.append(frame_grid(big, pad=4))
    gif = write_gif(f"{stem}_rollouts.gif", torch.cat(rows, dim=1), fps=2)
    fig, ax = plt.subplots(figsize=(5, 3.2))
    steps = range(1, out["horizon"] + 1)
    for name in ("raster", "diagonal", "copy_last"):
        ax.plot(steps, out[name]["psnr_per_step"], marker="o", label=name.replace("_", " "))
    ax.set_xlabel("rollout step")
    ax.set_ylabel("PSNR of the mean MSE (dB)")
    ax.set_title(f"held-out Crafter 36x36, {out['clips']} clips")
    ax.legend()
    fig.tight_layout()
    fig.savefig(f"{stem}_psnr.png", dpi=120)
    plt.close(fig)
    out["media"] = [str(gif), f"{stem}_psnr.png"]


def print_crafter(args: argparse.Namespace, hardware: str, q: dict) -> None:
    t = q["tokenizer"]
    print(
        f"\n## quality — held-out recorded Crafter 36x36 ({args.held_out} episodes, "
        f"{q['clips']} clips), ar-world {q['size']} ({q['params']:,} params), "
        f"{q['train_steps']} steps in {q['train_seconds']:.0f} s, {hardware}\n"
    )
    print(f"PatchVQTokenizer, {t['codes']} codes (k-means {t['fit_seconds']:.0f} s): held-out "
          f"reconstruction {t['recon_psnr']:.2f} dB; ids equal to the previous frame's: "
          f"{t['copy_token_agreement']:.3f}\n")  # fmt: skip
    print("| model | PSNR next | SSIM next | PSNR 8-step | SSIM 8-step | controllability (dB) |")
    print("|---|---|---|---|---|---|")
    for name in ("raster", "diagonal", "copy_last"):
        r = q[name]
        ctrl = f"{r['controllability_db']:+.2f}" if "controllability_db" in r else "—"
        label = {"raster": "ar-world raster", "diagonal": "ar-world diagonal (w=9)",
                 "copy_last": "copy last frame"}[name]  # fmt: skip
        print(f"| {label} | {r['psnr_1']:.2f} | {r['ssim_1']:.3f} | {r['psnr_8']:.2f} | "
              f"{r['ssim_8']:.3f} | {ctrl} |")  # fmt: skip
    if q.get("offsets"):
        print("\ndiagonal decoding (w=9) against its row offset (offset 1 above):\n")
        print("| offset | passes/frame | PSNR next | SSIM next | PSNR 8-step | SSIM 8-step |")
        print("|---|---|---|---|---|---|")
        for offset, r in q["offsets"].items():
            print(f"| {offset} | {r['passes_per_frame']} | {r['psnr_1']:.2f} | {r['ssim_1']:.3f} "
                  f"| {r['psnr_8']:.2f} | {r['ssim_8']:.3f} |")  # fmt: skip
    print(f"\nmedia: {', '.join(q.get('media', []))}")
