"""How long the program takes under mocks, per stack: a fresh interpreter imports the SDKs and runs
the real __main__.py, as `pulumi preview` does before it asks any provider. With --compare, a second
checkout (another commit's tree) runs interleaved with this one, so both see the same machine load.
With --replay, each program run is followed by a run of its replay (tests/replay.py: the same
resources registered with no program logic), the floor the program's time is read against.

    .venv/bin/python scripts/benchmark_program.py [--runs 7] [--compare /path/to/other/checkout | --replay]
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
REPLAY = "from tests.replay import replay_file; replay_file({path!r})"
RECORDINGS = ROOT / "build" / "replay"
ENV = {**os.environ, "AWS_EC2_METADATA_DISABLED": "true", "AWS_ACCESS_KEY_ID": "placeholder", "AWS_SECRET_ACCESS_KEY": "placeholder"}


def once(checkout: Path, code: str) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user + system) of one run; CPU time varies less with the
    machine's load, so the comparison reads it."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], cwd=checkout, env=ENV, check=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--compare", type=Path)
    parser.add_argument("--stacks", nargs="+", default=["dev", "prod"])
    parser.add_argument("--replay", action="store_true", help="time each stack's replay after its program run (this tree only)")
    args = parser.parse_args()
    if args.replay:
        if args.compare:
            parser.error("--replay times this tree only")
        return against_replay(args.runs, args.stacks)
    checkouts = {"this tree": ROOT, **({f"{args.compare}": args.compare} if args.compare else {})}
    times: dict[tuple[str, str], list[tuple[float, float]]] = {(c, s): [] for c in checkouts for s in args.stacks}
    for _ in range(args.runs):
        for stack in args.stacks:
            for label, checkout in checkouts.items():
                times[(label, stack)].append(once(checkout, PROGRAM.format(stack=stack)))
    print(f"{args.runs} runs each, interleaved\n")
    print("| tree | stack | CPU median (s) | CPU min (s) | wall median (s) |\n|---|---|---|---|---|")
    for (label, stack), values in times.items():
        cpu = [c for _, c in values]
        print(f"| {label} | {stack} | {statistics.median(cpu):.2f} | {min(cpu):.2f} | {statistics.median(w for w, _ in values):.2f} |")


def against_replay(runs: int, stacks: list[str]) -> None:
    """Program, then its replay, alternating, so both see the same load; the recording is made first."""
    load = os.getloadavg()
    for stack in stacks:
        subprocess.run([sys.executable, "-m", "tests.replay", "record", stack, str(RECORDINGS / f"{stack}.json")], cwd=ROOT, env=ENV, check=True)
    times: dict[tuple[str, str], list[tuple[float, float]]] = {(kind, s): [] for s in stacks for kind in ("program", "replay")}
    for _ in range(runs):
        for stack in stacks:
            times[("program", stack)].append(once(ROOT, PROGRAM.format(stack=stack)))
            times[("replay", stack)].append(once(ROOT, REPLAY.format(path=str(RECORDINGS / f"{stack}.json"))))
    print(f"{runs} runs each, program and replay alternating; load average {load[0]:.2f} before, {os.getloadavg()[0]:.2f} after\n")
    print("| stack | run | CPU median (s) | CPU min (s) | wall median (s) |\n|---|---|---|---|---|")
    for (kind, stack), values in times.items():
        cpu = [c for _, c in values]
        print(f"| {stack} | {kind} | {statistics.median(cpu):.2f} | {min(cpu):.2f} | {statistics.median(w for w, _ in values):.2f} |")
    print("\n| stack | program / replay, CPU median | CPU min | wall median |\n|---|---|---|---|")
    for stack in stacks:
        program, replay = times[("program", stack)], times[("replay", stack)]
        ratios = [
            statistics.median(c for _, c in program) / statistics.median(c for _, c in replay),
            min(c for _, c in program) / min(c for _, c in replay),
            statistics.median(w for w, _ in program) / statistics.median(w for w, _ in replay),
        ]
        print(f"| {stack} | " + " | ".join(f"{r:.2f}" for r in ratios) + " |")


if __name__ == "__main__":
    main()
