"""Benchmark: wall time of the full test suite (nbval included) and of an uncached and a cached book build.

Goals on a 2-core CPU: suite <= 5 minutes, uncached build <= 15 minutes. The cached build starts
from the execution cache alone (`_build/.jupyter_cache`, as the book workflow restores it), so it
still writes every page. Everything runs in a temporary copy of the working tree, with that copy
first on PYTHONPATH (notebook kernels included), so your `_build/` is never touched.
The ToyWorld CLIP is trained first if it is not cached yet, and that time is printed on its own:
it is a one-off cost, not part of the suite.

    python benchmarks/suite_time.py [--skip-suite] [--skip-build] [--keep]
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SUITE = [sys.executable, "-m", "pytest", "-q"]  # the README's test command, quieter
BUILD = ["jupyter-book", "build", ".", "-W", "-n", "--keep-going"]  # the README's build command
IGNORE = shutil.ignore_patterns("_build", ".git", "*.egg-info", "__pycache__", ".hypothesis", ".ipynb_checkpoints")


def timed(cmd: list[str], cwd: Path, label: str) -> tuple[float, int]:
    """Run cmd in cwd, echoing its output; return (wall seconds, exit code)."""
    print(f"\n=== {label}: {' '.join(cmd)}", flush=True)
    start = time.perf_counter()
    path = os.pathsep.join(filter(None, [str(cwd), os.environ.get("PYTHONPATH")]))  # kernels import the copy too
    code = subprocess.call(cmd, cwd=cwd, env={**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": path})
    return time.perf_counter() - start, code


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--skip-suite", action="store_true", help="time only the book builds")
    parser.add_argument("--skip-build", action="store_true", help="time only the test suite")
    parser.add_argument("--keep", action="store_true", help="keep the temporary copy and print where it is")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="minclip-suite-time-")) / "tree"
    shutil.copytree(ROOT, work, ignore=IGNORE)
    rows = []
    warm = [sys.executable, "-c", "from minclip_unlearn.models import load_clip; load_clip('toy')"]
    rows.append(("ToyWorld CLIP ready (trained only if not cached)", *timed(warm, work, "toy model"), None))
    if not args.skip_suite:
        rows.append(("test suite, nbval included", *timed(SUITE, work, "suite"), 300))  # issue 15: <= 5 min on 2 cores
    if not args.skip_build:
        rows.append(("book build, uncached", *timed(BUILD, work, "build (uncached)"), 900))
        for built in (work / "_build").iterdir():  # what CI restores is the execution cache alone
            if built.name != ".jupyter_cache":
                shutil.rmtree(built) if built.is_dir() else built.unlink()
        rows.append(("book build, execution cache only", *timed(BUILD, work, "build (cached)"), None))
    print(f"\n{'step':<50} {'wall':>9} {'goal':>7}  result   ({os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f})")
    for label, seconds, code, goal in rows:
        verdict = "FAILED" if code else ("ok" if goal is None or seconds <= goal else "over goal")
        goal_s = f"{goal / 60:.0f} min" if goal else "-"
        print(f"{label:<50} {seconds / 60:6.1f} min {goal_s:>7}  {verdict}")
    if args.keep:
        print(f"\ncopy kept in {work}")
    else:
        shutil.rmtree(work.parent, ignore_errors=True)
    sys.exit(max(code for _, _, code, _ in rows))


if __name__ == "__main__":
    main()
