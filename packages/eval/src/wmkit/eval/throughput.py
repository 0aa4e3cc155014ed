"""Throughput harness shared by every package's ``tools/bench_*.py`` (CONVENTIONS.md).

``measure(fn, items=...)`` calls ``fn()`` after ``warmup`` calls, ``repeats`` times,
synchronising CUDA around each call, and reports the median time and its spread (min, max,
inter-quartile range), items per second (frames/s, tokens/s: what ``items`` counts),
per-call latency p50/p95, peak memory (CUDA: ``max_memory_allocated``; CPU: the process's
peak resident set, which includes everything loaded before) and, on CUDA, MFU = achieved
FLOP/s over the device's peak, from a FLOP count (:func:`count_flops`, PyTorch's
``FlopCounterMode``, or a number you pass). :func:`markdown_table` and :func:`write_results`
give the table a README shows and the JSON under ``results/`` with hardware and versions.

Example (from a bench script)::

    from wmkit.eval.throughput import measure, markdown_table, write_results, hardware_info
    r = measure(lambda: model(x), name="tiny fwd", items=x.shape[0] * x.shape[1],
                unit="frames", device="cpu", repeats=10)
    print(markdown_table([r]))
    write_results("results/bench_x.json", [r])
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import resource
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import torch

__all__ = [
    "PEAK_FLOPS",
    "ThroughputResult",
    "count_flops",
    "hardware_info",
    "markdown_table",
    "measure",
    "peak_flops",
    "write_results",
]

# Dense peak FLOP/s per GPU model and dtype (vendor datasheets, no sparsity).
PEAK_FLOPS: dict[str, dict[str, float]] = {
    "H200": {"bf16": 989e12, "fp16": 989e12, "fp32": 67e12, "tf32": 494e12},
    "H100": {"bf16": 989e12, "fp16": 989e12, "fp32": 67e12, "tf32": 494e12},
    "A100": {"bf16": 312e12, "fp16": 312e12, "fp32": 19.5e12, "tf32": 156e12},
    "L40S": {"bf16": 362e12, "fp16": 362e12, "fp32": 91.6e12, "tf32": 183e12},
    "A10G": {"bf16": 70e12, "fp16": 70e12, "fp32": 31.2e12, "tf32": 35e12},
    "RTX 4090": {"bf16": 165e12, "fp16": 165e12, "fp32": 82.6e12, "tf32": 82.6e12},
    "T4": {"fp16": 65e12, "fp32": 8.1e12},
}


@dataclass
class ThroughputResult:
    """One measured configuration. Times in seconds; ``items_per_s`` uses the median."""

    name: str
    device: str
    items: int
    unit: str
    repeats: int
    warmup: int
    times_s: list[float]
    median_s: float
    min_s: float
    max_s: float
    iqr_s: float
    items_per_s: float
    latency_p50_ms: float
    latency_p95_ms: float
    peak_memory_mb: float | None
    flops: float | None = None
    tflops_per_s: float | None = None
    mfu: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _percentile(values: Sequence[float], q: float) -> float:
    s = sorted(values)
    if len(s) == 1:
        return s[0]
    pos = (len(s) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def count_flops(fn: Callable[[], Any]) -> float:
    """FLOPs of one ``fn()`` call counted by ``torch.utils.flop_counter.FlopCounterMode``
    (matmuls and convolutions, forward and backward if ``fn`` runs it)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return float(counter.get_total_flops())


def peak_flops(device: str | torch.device, dtype: str = "bf16") -> float | None:
    """The device's dense peak FLOP/s for ``dtype`` (bf16/fp16/tf32/fp32), if known (CUDA)."""
    device = torch.device(device)
    if device.type != "cuda" or not torch.cuda.is_available():
        return None
    name = torch.cuda.get_device_name(device)
    for key, table in PEAK_FLOPS.items():
        if key in name:
            return table.get(dtype)
    return None


def measure(
    fn: Callable[[], Any],
    *,
    name: str,
    items: int = 1,
    unit: str = "items",
    device: str | torch.device = "cpu",
    warmup: int = 2,
    repeats: int = 10,
    flops: float | None = None,
    dtype: str = "bf16",
    extra: dict[str, Any] | None = None,
) -> ThroughputResult:
    """Time ``fn()``: ``warmup`` untimed calls, then ``repeats`` timed ones.

    Args:
        items: what one call produces (frames, tokens, clips), for ``items_per_s``.
        unit: the name of an item, for tables.
        device: where ``fn`` runs (CUDA is synchronised before and after every call).
        flops: FLOPs of one call (see :func:`count_flops`), for TFLOP/s and, on CUDA, MFU
            against :func:`peak_flops` for ``dtype``.
    """
    if repeats < 1 or warmup < 0 or items < 1:
        raise ValueError(
            f"need repeats >= 1, warmup >= 0, items >= 1; got {repeats}, {warmup}, {items}"
        )
    dev = torch.device(device)
    for _ in range(warmup):
        fn()
    _sync(dev)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    times = []
    for _ in range(repeats):
        _sync(dev)
        t0 = time.perf_counter()
        fn()
        _sync(dev)
        times.append(time.perf_counter() - t0)
    median = statistics.median(times)
    if dev.type == "cuda":
        peak_mb: float | None = torch.cuda.max_memory_allocated(dev) / 2**20
    else:
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        peak_mb = rss / 2**20 if sys.platform == "darwin" else rss / 2**10
    tflops = flops / median / 1e12 if flops else None
    peak = peak_flops(dev, dtype) if flops else None
    return ThroughputResult(
        name=name,
        device=str(dev),
        items=items,
        unit=unit,
        repeats=repeats,
        warmup=warmup,
        times_s=times,
        median_s=median,
        min_s=min(times),
        max_s=max(times),
        iqr_s=_percentile(times, 0.75) - _percentile(times, 0.25),
        items_per_s=items / median,
        latency_p50_ms=_percentile(times, 0.5) * 1e3,
        latency_p95_ms=_percentile(times, 0.95) * 1e3,
        peak_memory_mb=peak_mb,
        flops=flops,
        tflops_per_s=tflops,
        mfu=(flops / median / peak) if (flops and peak) else None,
        extra=dict(extra or {}),
    )


def hardware_info(device: str | torch.device = "cpu") -> dict[str, Any]:
    """Hardware and software versions to store beside results."""
    dev = torch.device(device)
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info: dict[str, Any] = {
        "device": str(dev),
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    for dist in ("wmkit-core", "wmkit-eval", "numpy", "torchmetrics"):
        with contextlib.suppress(PackageNotFoundError):
            info[dist] = version(dist)
    if dev.type == "cuda" and torch.cuda.is_available():
        props = torch.cuda.get_device_properties(dev)
        info.update(
            gpu=props.name,
            gpu_memory_gb=round(props.total_memory / 2**30, 1),
            cuda=torch.version.cuda,
            cudnn=torch.backends.cudnn.version(),
        )
    return info


def _fmt(v: float | None, spec: str) -> str:
    return "–" if v is None else format(v, spec)


def markdown_table(results: Sequence[ThroughputResult], extra_columns: Sequence[str] = ()) -> str:
    """Results as a Markdown table: name, device, items/s, median ± IQR, p50/p95 latency,
    peak memory, TFLOP/s and MFU (and any ``extra`` keys named in ``extra_columns``)."""
    head = ["config", *extra_columns, "device", "throughput", "median (ms)", "IQR (ms)",
            "p50 / p95 (ms)", "peak mem (MB)", "TFLOP/s", "MFU"]  # fmt: skip
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in results:
        cells = [r.name, *[str(r.extra.get(c, "")) for c in extra_columns], r.device,
                 f"{r.items_per_s:,.1f} {r.unit}/s", f"{r.median_s * 1e3:.2f}",
                 f"{r.iqr_s * 1e3:.2f}", f"{r.latency_p50_ms:.2f} / {r.latency_p95_ms:.2f}",
                 _fmt(r.peak_memory_mb, ".0f"), _fmt(r.tflops_per_s, ".3f"),
                 "–" if r.mfu is None else f"{r.mfu * 100:.1f}%"]  # fmt: skip
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def write_results(
    path: str | os.PathLike,
    results: Sequence[ThroughputResult],
    *,
    device: str | torch.device | None = None,
    config: dict[str, Any] | None = None,
) -> Path:
    """Write ``{"hardware": ..., "config": ..., "results": [...]}`` as JSON to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    dev = device if device is not None else (results[0].device if results else "cpu")
    data = {
        "hardware": hardware_info(dev),
        "config": config or {},
        "results": [asdict(r) for r in results],
    }
    path.write_text(json.dumps(data, indent=2, default=str))
    return path
