"""Count what one batch-1 decoding pass of wmkit.ar_world launches, on CPU: the figure that
bounds real-time decoding on a GPU.

At batch 1 a decoding pass of the ~300M model moves ~0.7 GB and does almost no arithmetic, so
on a GPU its time is set by how many kernels it launches (each costs microseconds, even
replayed from a CUDA graph), not by FLOPs. This counts them without a GPU, per decoding tick
(one forward pass) of ``ARWorldModel.step``:

- *transformer, eager*: the aten ops one cached pass dispatches (views excluded: they launch
  nothing), counted with a ``TorchDispatchMode``;
- *transformer, compiled*: the kernels in inductor's generated code for the same pass
  (``compile_decoding=True``; fused C++ kernels plus library calls such as matmuls and
  attention). On a GPU inductor emits Triton kernels instead; its fusion decisions are made
  by the same scheduler, so the count carries over closely, not exactly;
- *outside the transformer*: embeddings, output head, sampling and the ids gathered and
  written, per tick (eager in every mode; with ``cuda_graphs`` these are the launches left to
  Python between graph replays).

    uv run --no-sync python tools/bench_decoding_kernels.py            # 300M, ~3 min
    uv run --no-sync python tools/bench_decoding_kernels.py --size tiny --skip-compiled

Prints a Markdown table and writes results/bench_decoding_kernels.json.
"""

from __future__ import annotations

import argparse
import json
import re
from collections import Counter
from pathlib import Path

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from wmkit.ar_world import ARWorldModel
from wmkit.ar_world.decoders import make_decoder
from wmkit.ar_world.sizes import transformer_spec
from wmkit.core import ActionSpec
from wmkit.core.testing import ToyTokenizer

_NO_KERNEL = {"empty", "empty_strided", "empty_like", "lift_fresh", "_local_scalar_dense"}
_LAUNCH = re.compile(
    r"^\s+(?:\w+ = )?(cpp_fused_\w+|triton_\w+\.run|extern_kernels\.\w+|"
    r"torch\.ops\.\w+\.\w+(?:\.\w+)?|aten\.\w+(?:\.\w+)?)\("
)


class OpCounter(TorchDispatchMode):
    """Counts dispatched aten ops that launch work (not views, not allocations), split into
    those inside the transformer (``inside > 0``) and the rest."""

    def __init__(self) -> None:
        super().__init__()
        self.inside = 0
        self.ops = {"transformer": Counter(), "outside": Counter()}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        name = func.overloadpacket.__name__
        if not func.is_view and name not in _NO_KERNEL:
            self.ops["transformer" if self.inside else "outside"][name] += 1
        return out


def count_step(model: ARWorldModel, state, action: torch.Tensor) -> dict:
    """Ops of one ``model.step``, and its forward passes (the action/slot pass included)."""
    counter = OpCounter()
    forward = model.transformer.forward
    passes = []

    def counted(*a, **k):
        passes.append(a[0].shape[1])
        counter.inside += 1
        try:
            return forward(*a, **k)
        finally:
            counter.inside -= 1

    model.transformer.forward = counted
    try:
        with counter:
            model.step(state, action)
    finally:
        del model.transformer.forward
    t = sum(counter.ops["transformer"].values())
    o = sum(counter.ops["outside"].values())
    return {
        "passes": len(passes), "tokens_per_pass_max": max(passes),
        "transformer_ops_per_pass": t / len(passes), "outside_ops_per_tick": o / len(passes),
        "outside_top": counter.ops["outside"].most_common(8),
    }  # fmt: skip


def compiled_kernels(model: ARWorldModel, tokens: int) -> dict:
    """Kernels in inductor's code for one cached pass of ``tokens`` tokens (freshly compiled)."""
    from torch._inductor.utils import run_and_get_code

    tr = model.transformer
    torch._dynamo.reset()
    tr.compile_decoding()
    dim = tr.norm.weight.shape[0]
    cache = tr.new_cache(1, 64, torch.device("cpu"), torch.float32, static=True)
    x = torch.randn(1, tokens, dim)
    positions = torch.arange(tokens) + 3
    with torch.no_grad():
        _, codes = run_and_get_code(tr, x, positions, cache)
    launches: Counter = Counter()
    for code in codes:
        body = code[code.index("def call(") :] if "def call(" in code else code
        for line in body.splitlines():
            m = _LAUNCH.match(line)
            if m:
                kind = m.group(1)
                kind = "fused" if kind.startswith(("cpp_fused", "triton_")) else kind
                launches[kind] += 1
    return {"tokens": tokens, "kernels": sum(launches.values()), "by_kind": dict(launches)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", default="300M")
    p.add_argument("--window", type=int, default=16)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--skip-compiled", action="store_true", help="eager counts only")
    p.add_argument("--out", default="results/bench_decoding_kernels.json")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    spec = ActionSpec.discrete(5)
    rows = []
    model = None
    for decoding in ("raster", "diagonal"):
        torch.manual_seed(0)
        model = ARWorldModel(
            spec, ToyTokenizer(patch=4, levels=20), frame_size=(56, 96),
            transformer=transformer_spec(args.size), max_frames=4,
            decoder=make_decoder(decoding, args.window, temperature=1.0,
                                 cuda_graphs=True),  # the static cache the GPU decodes on
        ).eval()  # fmt: skip
        context = torch.rand(1, 2, 3, 56, 96) * 2 - 1
        action = spec.sample((1,))
        state = model.reset(context)
        row = {"decoding": decoding if decoding == "raster" else f"diagonal (w={args.window})"}
        row |= count_step(model, state, action)
        print(json.dumps(row), flush=True)
        rows.append(row)
    depth = len(model.transformer.blocks)
    compiled = []
    if not args.skip_compiled:
        for tokens in (1, 8):
            c = compiled_kernels(model, tokens)
            print(json.dumps(c), flush=True)
            compiled.append(c)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    payload = {"size": args.size, "depth": depth, "rows": rows, "compiled": compiled}
    out.write_text(json.dumps(payload, indent=2))
    params = sum(q.numel() for q in model.parameters()) / 1e6
    print(f"\n## kernels per decoding tick — {args.size} ({params:.0f}M params, {depth} blocks), "
          f"24x14 tokens/frame, 8,000-id vocabulary, batch 1, temperature 1\n")  # fmt: skip
    print("| decoding | passes/frame | transformer: eager ops/pass | outside: ops/tick |")
    print("|---|---|---|---|")
    for r in rows:
        print(f"| {r['decoding']} | {r['passes']} | {r['transformer_ops_per_pass']:.0f} | "
              f"{r['outside_ops_per_tick']:.1f} |")  # fmt: skip
    if compiled:
        print("\n| compiled pass | kernels | per block | by kind |")
        print("|---|---|---|---|")
        for c in compiled:
            kinds = ", ".join(f"{k} {v}" for k, v in sorted(c["by_kind"].items()))
            print(f"| {c['tokens']} token(s) | {c['kernels']} | {c['kernels'] / depth:.1f} | "
                  f"{kinds} |")  # fmt: skip
    print(f"\nraw numbers: {out}")


if __name__ == "__main__":
    main()
