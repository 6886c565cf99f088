"""Shared by the benchmarks: fixed threads, warm-up, interleaved repeats, median and spread, load average.

A figure measured on a shared CPU moves with whatever else runs. Each benchmark therefore
- fixes torch's thread count (`fix_threads`), so BLAS does not thrash against other processes;
- warms every side up once, then runs the sides in turn, round after round, rotating who goes first
  (`interleave`), so contention hits both sides alike;
- reports the median and the spread (min-max over the rounds) with the load average beside it (`show`),
  and a ratio as the median of the per-round ratios (`paired_ratio`).
"""
from __future__ import annotations

import os
import statistics
import time
from typing import Callable

import torch


def fix_threads(n: int) -> int:
    """Set torch's intra-op threads to n (>= 1); return it."""
    torch.set_num_threads(max(1, int(n)))
    return torch.get_num_threads()


def load_average() -> str:
    """'load 1/5/15 min: a b c' from os.getloadavg() ('n/a' where the OS has none)."""
    try:
        return "load 1/5/15 min: " + " ".join(f"{x:.2f}" for x in os.getloadavg())
    except (AttributeError, OSError):
        return "load: n/a"


def timed(fn: Callable[[], object]) -> float:
    """Wall time of one call of fn(), in seconds."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def interleave(sides: dict[str, Callable[[], object]], repeats: int = 7, warmup: int = 1) -> dict[str, list[float]]:
    """{name: fn} -> {name: [seconds] * repeats}: warm-up calls first, then rounds of one call per side,
    the starting side rotating every round."""
    names = list(sides)
    for name in names:
        for _ in range(warmup):
            sides[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(repeats):
        for name in names[r % len(names):] + names[: r % len(names)]:
            times[name].append(timed(sides[name]))
    return times


def median(xs: list[float]) -> float:
    """Median of a non-empty list."""
    return statistics.median(xs)


def spread(xs: list[float]) -> float:
    """(max - min) / median: the relative width of the measurements."""
    return (max(xs) - min(xs)) / median(xs)


def show(label: str, seconds: list[float], unit: str = "ms") -> str:
    """One line: label, median, min-max and relative spread over n rounds, and the load average now."""
    k = {"s": 1.0, "ms": 1e3, "us": 1e6}[unit]
    m = median(seconds) * k
    return (f"{label}: {m:9.2f} {unit} (min-max {min(seconds) * k:.2f}-{max(seconds) * k:.2f}, "
            f"spread {spread(seconds):.0%}, n={len(seconds)}) | {load_average()}")


def paired_ratio(a: list[float], b: list[float]) -> tuple[float, float, float]:
    """Interleaved times of two sides -> (median of per-round a/b, min, max): contention shared by a round cancels."""
    ratios = [x / y for x, y in zip(a, b)]
    return median(ratios), min(ratios), max(ratios)


def matmul_rate(n: int = 1024, dtype: torch.dtype = torch.float32, repeats: int = 5) -> float:
    """FLOP/s of a bare (n x n) @ (n x n) torch.mm (2 n^3 per product): the median of repeats after a warm-up."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    out = torch.empty(n, n, dtype=dtype)
    times = interleave({"mm": lambda: torch.mm(a, b, out=out)}, repeats=repeats)["mm"]
    return 2 * n**3 / median(times)


def matmul_side(n: int = 1024, dtype: torch.dtype = torch.float32, reps: int = 4) -> tuple[Callable[[], None], float]:
    """A bare matmul loop to interleave with a stage as its ceiling -> (fn, FLOPs per call = reps * 2 n^3)."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    out = torch.empty(n, n, dtype=dtype)

    def fn() -> None:
        for _ in range(reps):
            torch.mm(a, b, out=out)

    return fn, reps * 2.0 * n**3


def share(stage: list[float], stage_work: float, ceiling: list[float], ceiling_work: float) -> float:
    """Interleaved times of a stage and its ceiling, and the work (FLOPs, images) of one call of each ->
    the median over rounds of (stage rate) / (ceiling rate)."""
    return median([(stage_work / s) / (ceiling_work / c) for s, c in zip(stage, ceiling)])


def count_flops(fn: Callable[[], object]) -> int:
    """FLOPs of the matmuls, convolutions and attention in one call of fn() (torch.utils.flop_counter)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def header(threads: int) -> str:
    """One line naming the machine, torch, the fixed thread count and the load average at the start."""
    return (f"CPU: {os.cpu_count()} cores, torch {torch.__version__}, torch threads fixed at {threads} | "
            f"{load_average()}")
