"""Shared by the benchmarks: timing, the machine's fp32 matmul ceiling, and RESULTS.md sections."""

import os
import platform
import re
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

RESULTS = Path(__file__).with_name("RESULTS.md")


def run_times(fn: Callable[[], object], repeat: int, warmup: int) -> list[float]:
    """Wall times of `repeat` calls of `fn()` in seconds, after `warmup` untimed calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def timeit(fn: Callable[[], object], repeat: int = 5, warmup: int = 1) -> float:
    """Median wall time of `fn()` in seconds: what a user typically waits."""
    return statistics.median(run_times(fn, repeat, warmup))


def paired(
    theirs: Callable[[], object],
    ours: Callable[[], object],
    repeat: int = 5,
    warmup: int = 1,
    run: int = 1,
) -> tuple[float, float]:
    """Median wall times (theirs, ours) in seconds of `repeat` turns of each, taken in turn
    (theirs, ours, theirs, …) after `warmup` calls of each: this machine's speed drifts by ±25%
    over minutes, and turns taken in turn see the same drift, so their ratio does not depend on
    which side ran first. A turn is `run` calls in a row: with 1, each call begins where the
    other side left the caches (a one-off call); with more, most calls find their own weights
    still in cache (a loop over many texts)."""
    for _ in range(warmup):
        theirs(), ours()
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(repeat):
        for side, fn in zip(times, (theirs, ours), strict=True):
            for _ in range(run):
                t0 = time.perf_counter()
                fn()
                side.append(time.perf_counter() - t0)
    return statistics.median(times[0]), statistics.median(times[1])


def best_time(fn: Callable[[], object], repeat: int = 30, warmup: int = 5) -> float:
    """Fastest wall time of `fn()` in seconds: for ceilings, what the machine can do at best."""
    return min(run_times(fn, repeat, warmup))


def matmul_ceiling(n: int = 1024) -> dict[str, float]:
    """Best fp32 GFLOP/s of an n×n×n matmul: torch (MKL) and numpy (OpenBLAS)."""
    a = torch.randn(n, n)
    b = torch.randn(n, n)
    an, bn = a.numpy(), b.numpy()
    flops = 2 * n**3
    return {
        "torch_gflops": flops / best_time(lambda: a @ b) / 1e9,
        "numpy_gflops": flops / best_time(lambda: an @ bn) / 1e9,
    }


def machine() -> str:
    return (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"torch {torch.__version__} ({torch.get_num_threads()} threads), numpy {np.__version__}"
    )


def write_section(name: str, markdown: str) -> None:
    """Replace the `<!-- name:begin -->…<!-- name:end -->` block of RESULTS.md (or append it)."""
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    block = f"{begin}\n{markdown.strip()}\n{end}"
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    pattern = re.compile(re.escape(begin) + ".*?" + re.escape(end), re.S)
    text = (
        pattern.sub(lambda _: block, text) if pattern.search(text) else text + "\n" + block + "\n"
    )
    tmp = RESULTS.with_suffix(".tmp")
    tmp.write_text(text)
    tmp.replace(RESULTS)
