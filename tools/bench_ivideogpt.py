"""Benchmark iVideoGPT's transformer at the released sizes: next-frame latency and frames/s.

    uv run python tools/bench_ivideogpt.py --device cpu --size tiny --repeats 1
    uv run python tools/bench_ivideogpt.py --device cuda --size 138m 436m --repeats 5
    uv run python tools/bench_ivideogpt.py --size 138m --mode cache --decoding raster,diagonal

The released transformers (``LLAMA_SIZES``: 138M, and the 436M "medium") with random
weights (speed does not depend on the values), built as ``wmkit convert ivideogpt`` builds
them: ``IVideoGPTTransformer`` over the released 64×64 layout (2 context frames of 16×16 ids,
4×4 ids per future frame, 8192 + 8192 codes), action-conditioned with ``--action-dim``
(default 4; 0: action-free). Batch ``--batch``.

Each repeat prefills the context and decodes ``--frames`` future frames (the released
segment of 16 frames holds 14) with ``IVideoGPTDecoder``, sampling at temperature 1 and
top-k 100 as ``predict.py`` does, in one of two modes:

- ``cache``: one KV cache across the whole rollout (wmkit's decoding);
- ``prefill``: a fresh cache for every frame, prefilling the whole sequence so far, as the
  released action-conditioned ``generate`` recomputes the prefix for each frame.

and in one of two orders (``--decoding``, comma- or space-separated):

- ``raster``: the release's order, one id per pass (``n + 1`` passes per frame with the slot);
- ``diagonal``: MineWorld's diagonal decoding of the 4×4 future grid (``--window`` rows in
  flight, each ``--offset`` ids behind the row above; an approximation of the raster-trained
  model, see ``wmkit.ar_world.ivideogpt_decoding``), fewer passes per frame.

Next-frame latency is the time of one frame's decoding passes (median over the frames of all
repeats, with min–max); frames/s is its inverse; "passes" counts the transformer's forward
passes per frame (the prefill mode's re-prefill included). The tokenizer is not timed
(it is another package's and runs once per frame in either mode). Times follow a warm-up
rollout and synchronise CUDA.

Prints a Markdown table and writes the raw numbers to ``results/bench_ivideogpt.json``.
"""

from __future__ import annotations

import argparse
import datetime
import itertools
import json
import statistics
import time
from pathlib import Path

import torch
from bench_common import hardware_line, sync

from wmkit.ar_world.ivideogpt_decoding import IVideoGPTDecoder
from wmkit.ar_world.ivideogpt_layout import IVideoGPTLayout
from wmkit.ar_world.ivideogpt_transformer import IVideoGPTTransformer
from wmkit.ar_world.llama import LLAMA_SIZES, LlamaConfig
from wmkit.ar_world.sampling import Sampler

ROOT = Path(__file__).resolve().parents[1]
RELEASED = IVideoGPTLayout(2, (16, 16), (4, 4), 8192, 8192)
TINY_LAYOUT = IVideoGPTLayout(2, (4, 4), (2, 2), 64, 64)
SIZES = {
    "138m": (LLAMA_SIZES["ivideogpt-138m"], RELEASED),
    "436m": (LLAMA_SIZES["ivideogpt-436m"], RELEASED),
    "tiny": (
        LlamaConfig(TINY_LAYOUT.vocab_size, 64, 128, 2, 4, 4, max_position_embeddings=256),
        TINY_LAYOUT,
    ),
}
MODES = ["cache", "prefill"]
DECODINGS = ["raster", "diagonal"]


def rollout_times(
    model: IVideoGPTTransformer,
    layout: IVideoGPTLayout,
    mode: str,
    frames: int,
    batch: int,
    device: str,
    decoder: IVideoGPTDecoder,
) -> tuple[float, list[float]]:
    """Prefill time and each frame's decoding time of one rollout of ``frames`` frames."""
    context = torch.randint(0, layout.context_vocab_size, (batch, 2, *layout.context_grid))
    context = context.to(device)
    dim = model.action_dim
    actions = None if dim is None else torch.rand(batch, frames, dim, device=device) * 2 - 1
    sync(device)
    start = time.perf_counter()
    cursor = decoder.start(model, layout, context, frames)
    sync(device)
    prefill = time.perf_counter() - start
    times = []
    for i in range(frames):
        start = time.perf_counter()
        if mode == "prefill" and i:  # a fresh cache holding the whole sequence so far
            ids = cursor.ids
            cursor = decoder.start(model, layout, context, frames)
            tail = ids[:, layout.prelude_length :]
            x = model.llm.embed(tail)  # [B, S, D]
            if actions is not None:  # the slots' actions, as in the sequence so far
                pos = layout.action_positions(i, device) - layout.prelude_length
                x[:, pos] += model.action_embeddings(actions[:, :i])
            cursor.logits = model.llm(embeds=x, cache=cursor.cache)[:, -1]
            cursor.ids = ids
        decoder.next_frame(model, layout, cursor, None if actions is None else actions[:, i])
        sync(device)
        times.append(time.perf_counter() - start)
    return prefill, times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--size", nargs="+", default=["138m"], choices=list(SIZES))
    parser.add_argument("--mode", nargs="+", default=MODES, choices=MODES)
    parser.add_argument(
        "--decoding", nargs="+", default=["raster"], help="raster, diagonal (comma-separated ok)"
    )
    parser.add_argument("--window", type=int, default=4, help="diagonal: rows in flight")
    parser.add_argument("--offset", type=int, default=1, help="diagonal: lag between rows")
    parser.add_argument("--dtype", default="fp32", choices=["fp32", "bf16"])
    parser.add_argument("--frames", type=int, default=14, help="future frames per rollout")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--action-dim", type=int, default=4, help="0: action-free")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=str(ROOT / "results" / "bench_ivideogpt.json"))
    args = parser.parse_args()
    decodings = [d for item in args.decoding for d in item.split(",") if d]
    bad = sorted(set(decodings) - set(DECODINGS))
    if bad or not decodings:
        parser.error(f"--decoding takes {DECODINGS}; got {args.decoding}")
    dtype = torch.bfloat16 if args.dtype == "bf16" else torch.float32
    rows = []
    for size in args.size:
        config, layout = SIZES[size]
        torch.manual_seed(0)
        model = IVideoGPTTransformer(config, args.action_dim or None)
        model = model.to(device=args.device, dtype=dtype).eval()
        passes = [0]
        model.llm.register_forward_hook(lambda *_, n=passes: n.__setitem__(0, n[0] + 1))
        for mode, decoding in itertools.product(args.mode, decodings):
            decoder = IVideoGPTDecoder(
                Sampler(temperature=1.0, top_k=100), decoding=decoding,
                window=args.window, offset=args.offset,
            )  # fmt: skip
            bench = (model, layout, mode, args.frames, args.batch, args.device, decoder)
            with torch.no_grad():
                rollout_times(*bench[:3], 2, *bench[4:])  # warm-up
                passes[0] = 0
                runs = [rollout_times(*bench) for _ in range(args.repeats)]
            per_frame = (passes[0] - args.repeats) / (args.repeats * args.frames)  # no prefill
            frame_times = [t for _, ts in runs for t in ts]
            latency = statistics.median(frame_times)
            rows.append({
                "size": size, "mode": mode, "decoding": decoding,
                "window": args.window if decoding == "diagonal" else None,
                "offset": args.offset if decoding == "diagonal" else None,
                "passes_per_frame": per_frame, "device": args.device, "dtype": args.dtype,
                "batch": args.batch, "frames": args.frames, "action_dim": args.action_dim,
                "params": sum(p.numel() for p in model.parameters()),
                "prefill_ms": 1e3 * statistics.median(p for p, _ in runs),
                "latency_ms": 1e3 * latency, "latency_min_ms": 1e3 * min(frame_times),
                "latency_max_ms": 1e3 * max(frame_times),
                "frames_per_s": args.batch / latency,
                "tokens_per_s": args.batch * (layout.future_tokens + 1) / latency,
            })  # fmt: skip
    hardware = hardware_line(args.device)
    print(f"iVideoGPT transformer, next-frame decoding ({hardware}, {args.dtype})\n")
    print(
        "| size | mode | decoding | passes/frame | params | prefill ms | next-frame ms (min–max) "
        "| frames/s | tokens/s |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        order = r["decoding"]
        if order == "diagonal":
            order += f" (window {r['window']}, offset {r['offset']})"
        print(
            f"| {r['size']} | {r['mode']} | {order} | {r['passes_per_frame']:.3g} | "
            f"{r['params'] / 1e6:.1f}M | {r['prefill_ms']:.1f} | "
            f"{r['latency_ms']:.1f} ({r['latency_min_ms']:.1f}–{r['latency_max_ms']:.1f}) | "
            f"{r['frames_per_s']:.2f} | {r['tokens_per_s']:.0f} |"
        )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    stamp = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    out.write_text(json.dumps({"hardware": hardware, "time": stamp, "rows": rows}, indent=2))
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
