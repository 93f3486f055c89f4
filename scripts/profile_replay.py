"""Where the program's time above its replay goes: one program run and one replay run of a stack, each
under cProfile in a fresh interpreter, then the entries whose cumulative time differs most and the
self time by module. Both import the same SDK modules; they are imported before the profiler starts,
or their import time would land in whichever project function first touches an SDK class. The
cyclic garbage collector is off while profiling (a full collection of the SDKs' objects takes tens
of ms and lands in whatever function allocated last); two more runs, unprofiled, measure it.

    .venv/bin/python scripts/profile_replay.py [--stack prod] [--top 30]
"""

from __future__ import annotations

import argparse
import collections
import cProfile
import gc
import importlib
import json
import pstats
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the children import tests.harness; a script's own folder is on the path, not the project's

from benchmark_program import ENV, RECORDINGS  # noqa: E402

# Frames every run passes through (event loop, harness, runpy): the same in both, or only wrappers.
WRAPPERS = ("asyncio/", "runpy", "threading.py", "concurrent/", "/tests/", "sync_await.py", "{method 'run'", "builtins.exec", "profile_replay.py")

Key = tuple[str, int, str]


def child(kind: str, stack: str, out: Path, profile: bool) -> None:
    from tests.harness import run_program
    from tests.replay import replay_file

    recording = RECORDINGS / f"{stack}.json"
    for path in {r["class"] for r in json.loads(recording.read_text())["resources"] if r["class"]}:
        module, _, name = path.rpartition(".")
        getattr(importlib.import_module(module), name)  # SDK submodules load lazily, on first attribute

    def run() -> None:
        if kind == "program":
            assert run_program(stack).error is None
        else:
            replay_file(recording)

    if profile:
        gc.disable()
        profiler = cProfile.Profile()  # its wall clock: a CPU clock costs a system call per event, doubling the overhead
        profiler.runcall(run)
        profiler.dump_stats(str(out))
        return
    collected = {"collections": 0, "seconds": 0.0}

    def timed(phase: str, _: dict) -> None:
        # The CPU clock subtracted at a collection's start and added at its stop: the sum is the time collecting.
        collected["seconds"] += time.process_time() if phase == "stop" else -time.process_time()
        collected["collections"] += phase == "stop"

    gc.callbacks.append(timed)
    started = time.process_time()
    run()
    out.write_text(json.dumps({**collected, "cpu": time.process_time() - started}))


def where(key: Key) -> str:
    file, line, function = key
    file = file.replace(f"{ROOT}/", "").split("site-packages/")[-1].split("lib/python3.11/")[-1]
    return f"{file}:{line}({function})" if line else function


def module_of(file: str) -> str:
    """Project files by file, the pulumi SDK by file, other packages and the standard library by top-level name."""
    file = file.replace(f"{ROOT}/", "")
    if "site-packages/" in file:
        parts = file.split("site-packages/")[1].split("/")
        return "/".join(parts[:3]) if parts[0] == "pulumi" else parts[0]
    if "lib/python3.11/" in file:
        return file.split("lib/python3.11/")[1].split("/")[0]
    return file


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stack", default="prod")
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--child", choices=["program", "replay"], help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--unprofiled", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.child, args.stack, args.out, profile=not args.unprofiled)
    subprocess.run([sys.executable, "-m", "tests.replay", "record", args.stack, str(RECORDINGS / f"{args.stack}.json")], cwd=ROOT, env=ENV, check=True)
    stats, collected = {}, {}
    for kind in ("program", "replay"):
        out, measured = RECORDINGS / f"{args.stack}.{kind}.prof", RECORDINGS / f"{args.stack}.{kind}.gc.json"
        for extra, path in (([], out), (["--unprofiled"], measured)):
            subprocess.run([sys.executable, __file__, "--child", kind, "--stack", args.stack, "--out", str(path), *extra], cwd=ROOT, env=ENV, check=True)
        stats[kind], collected[kind] = pstats.Stats(str(out)), json.loads(measured.read_text())
    for kind, gc_time in collected.items():
        print(f"{kind}, unprofiled: CPU {gc_time['cpu']:.2f} s after the imports, of which {gc_time['seconds']:.2f} s in {gc_time['collections']} collections")
    program, replay = (stats[k].stats for k in ("program", "replay"))  # type: ignore[attr-defined]
    print(f"profiled, GC off: program {stats['program'].total_tt:.2f} s, replay {stats['replay'].total_tt:.2f} s\n")  # type: ignore[attr-defined]

    def row(stats: dict, key: Key) -> tuple[int, float, float]:
        calls, _, own, cumulative = stats.get(key, (0, 0, 0.0, 0.0))[:4]
        return calls, own, cumulative

    print("| cumulative s, program - replay | program | replay | calls, program / replay | function |\n|---|---|---|---|---|")
    keys = [k for k in set(program) | set(replay) if not any(w in where(k) for w in WRAPPERS)]
    for key in sorted(keys, key=lambda k: row(replay, k)[2] - row(program, k)[2])[: args.top]:
        (pc, _, pt), (rc, _, rt) = row(program, key), row(replay, key)
        print(f"| {pt - rt:.3f} | {pt:.3f} | {rt:.3f} | {pc} / {rc} | {where(key)} |")

    own: dict[str, collections.defaultdict[str, float]] = {kind: collections.defaultdict(float) for kind in stats}
    for kind, table in (("program", program), ("replay", replay)):
        for key in table:
            own[kind][module_of(key[0]) if key[1] else "builtins"] += row(table, key)[1]
    print("\n| self s, program - replay | program | replay | module |\n|---|---|---|---|")
    modules = sorted(set(own["program"]) | set(own["replay"]), key=lambda m: own["replay"][m] - own["program"][m])
    for module in modules[: args.top]:
        print(f"| {own['program'][module] - own['replay'][module]:.3f} | {own['program'][module]:.3f} | {own['replay'][module]:.3f} | {module} |")


if __name__ == "__main__":
    main()
