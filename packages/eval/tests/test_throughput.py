"""The throughput harness times after warm-up and reports medians, spreads and FLOPs."""

import json
import time

import pytest
import torch

from wmkit.eval.throughput import count_flops, markdown_table, measure, peak_flops, write_results


def test_measure_counts_calls_and_reports_median_and_percentiles(tmp_path):
    calls = []

    def fn():
        calls.append(1)
        time.sleep(0.01)

    r = measure(fn, name="sleep", items=5, unit="frames", warmup=2, repeats=6)
    assert len(calls) == 8 and len(r.times_s) == 6
    assert r.min_s <= r.median_s <= r.max_s and r.median_s >= 0.0095
    assert r.items_per_s == pytest.approx(5 / r.median_s)
    assert r.latency_p50_ms <= r.latency_p95_ms <= r.max_s * 1e3 + 1e-9
    assert r.peak_memory_mb and r.peak_memory_mb > 0
    assert r.mfu is None  # CPU: no peak FLOP/s
    table = markdown_table([r])
    assert "| sleep |" in table and "frames/s" in table and "p50 / p95" in table
    path = write_results(tmp_path / "r.json", [r], config={"repeats": 6})
    data = json.loads(path.read_text())
    assert data["hardware"]["torch"] == torch.__version__ and data["results"][0]["name"] == "sleep"
    with pytest.raises(ValueError, match="repeats >= 1"):
        measure(fn, name="x", repeats=0)


def test_count_flops_of_a_matmul_and_tflops():
    a, b = torch.randn(8, 16), torch.randn(16, 4)
    flops = count_flops(lambda: a @ b)
    assert flops == 2 * 8 * 16 * 4
    r = measure(lambda: a @ b, name="mm", flops=flops, repeats=3, warmup=1)
    assert r.tflops_per_s == pytest.approx(flops / r.median_s / 1e12)
    assert peak_flops("cpu") is None
