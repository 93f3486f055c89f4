"""How long the program takes under mocks, per stack: a fresh interpreter imports the SDKs and runs
the real __main__.py, as `pulumi preview` does before it asks any provider. With --compare, a second
checkout (another commit's tree) runs interleaved with this one, so both see the same machine load.

    .venv/bin/python scripts/benchmark_program.py [--runs 7] [--compare /path/to/other/checkout]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROGRAM = "from tests.harness import run_program; run = run_program({stack!r}); assert run.error is None, run.error"


def once(checkout: Path, stack: str) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user + system) of one run; CPU time varies less with the
    machine's load, so the comparison reads it."""
    env = {**os.environ, "AWS_EC2_METADATA_DISABLED": "true", "AWS_ACCESS_KEY_ID": "placeholder", "AWS_SECRET_ACCESS_KEY": "placeholder"}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", PROGRAM.format(stack=stack)], cwd=checkout, env=env, check=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--compare", type=Path)
    parser.add_argument("--stacks", nargs="+", default=["dev", "prod"])
    args = parser.parse_args()
    checkouts = {"this tree": ROOT, **({f"{args.compare}": args.compare} if args.compare else {})}
    times: dict[tuple[str, str], list[tuple[float, float]]] = {(c, s): [] for c in checkouts for s in args.stacks}
    for _ in range(args.runs):
        for stack in args.stacks:
            for label, checkout in checkouts.items():
                times[(label, stack)].append(once(checkout, stack))
    print(f"{args.runs} runs each, interleaved\n")
    print("| tree | stack | CPU median (s) | CPU min (s) | wall median (s) |\n|---|---|---|---|---|")
    for (label, stack), values in times.items():
        cpu = [c for _, c in values]
        print(f"| {label} | {stack} | {statistics.median(cpu):.2f} | {min(cpu):.2f} | {statistics.median(w for w, _ in values):.2f} |")


if __name__ == "__main__":
    main()
