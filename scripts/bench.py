#!/usr/bin/env python3
"""`make bench`: how long `lab check` takes on each lab's starter and reference solution.

For every lab (or those named): one warm-up check of each (it fills the caches), then
RUNS checks of each, interleaved starter/solution with the same seed per pair, each
through the real CLI in a fresh process, as a learner runs it. Prints medians with
min-max and the per-stage breakdown, the solution/starter ratio measured side by side,
and the machine; writes the figures as JSON under build/bench/. Exit 1 when a lab misses
its `[bench] solution_seconds` target or a verdict is not the expected one.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from grader import catalog  # noqa: E402
from grader.labspec import LabSpec  # noqa: E402
from grader.resources import resources  # noqa: E402

EXPECTED_EXIT = {"starter": 1, "solution": 0}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("labs", nargs="*", help="lab slugs (default: every lab)")
    parser.add_argument("--runs", type=int, default=5, help="measured checks of each side (default 5)")
    parser.add_argument("--provider", default=os.environ.get("LAB_PROVIDER", "local"))
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "bench", help="folder for the JSON figures")
    args = parser.parse_args()

    labs = [catalog.load(slug) for slug in args.labs] if args.labs else catalog.load_all()
    figures = {"machine": machine(), "provider": args.provider, "runs": args.runs,
               "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "labs": {}}
    print(f"bench · {len(labs)} lab(s) · provider {args.provider} · {args.runs} interleaved runs of each side "
          f"after one warm-up each")
    print("machine: " + " · ".join(f"{key} {value}" for key, value in figures["machine"].items()))
    missed = 0
    with tempfile.TemporaryDirectory(prefix="nexus-labs-bench-") as work:
        os.environ["LAB_STATE_DIR"] = str(Path(work) / "state")  # the user's progress is not the bench's
        for lab in labs:
            result = bench_lab(lab, Path(work), args.provider, args.runs)
            figures["labs"][lab.slug] = result
            missed += not result["ok"]
    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out / f"bench-{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}.json"
    out.write_text(json.dumps(figures, indent=2) + "\n")
    print(f"\nfigures: {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}")
    return 1 if missed else 0


def bench_lab(lab: LabSpec, work: Path, provider: str, runs: int) -> dict:
    workspaces = {side: prepare(lab, work / lab.slug, side) for side in EXPECTED_EXIT}
    problems: list[str] = []
    for side, workspace in workspaces.items():  # warm-up: template clusters, bytecode, page cache
        check(workspace, provider, seed=1, side=side, problems=problems)
    samples: dict[str, list[dict]] = {side: [] for side in EXPECTED_EXIT}
    for run in range(runs):
        for side, workspace in workspaces.items():
            samples[side].append(check(workspace, provider, seed=1000 + run, side=side, problems=problems))
            print(f"  {lab.slug} {side:<8} run {run + 1}/{runs}: {samples[side][-1]['wall']:.1f}s", flush=True)

    summary = {side: summarise(side_samples) for side, side_samples in samples.items()}
    summary["servers"] = samples["solution"][-1]["servers"]
    summary["solution_to_starter"] = round(summary["solution"]["wall"]["median"] / summary["starter"]["wall"]["median"], 2)
    target = lab.bench.solution_seconds
    summary["target"] = {"solution_seconds": target}
    met = target is None or summary["solution"]["wall"]["median"] <= target
    summary["problems"], summary["ok"] = problems, met and not problems
    print_lab(lab, summary, target, met)
    return summary


def prepare(lab: LabSpec, base: Path, side: str) -> Path:
    """A workspace made by `lab start`; the solution's gets the reference fix copied over it."""
    workspace = base / side
    lab_cli("start", lab.slug, "--dir", str(workspace), cwd=base.parent, check=True)
    if side == "solution":
        shutil.copytree(resources().solution_dir(lab.slug), workspace, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("NOTES.md", "__pycache__"))
    return workspace


def check(workspace: Path, provider: str, seed: int, side: str, problems: list[str]) -> dict:
    started = time.perf_counter()
    process = lab_cli("check", "--provider", provider, "--seed", str(seed), cwd=workspace)
    wall = time.perf_counter() - started
    result = json.loads((workspace / ".lab" / "results" / "latest.json").read_text())
    if process.returncode != EXPECTED_EXIT[side]:
        problems.append(f"{side} seed {seed}: exit {process.returncode}, expected {EXPECTED_EXIT[side]}: "
                        + ", ".join(f"{c['id']}={c['status']}" for c in result["checks"]))
    return {"wall": wall, "stages": result["stages"], "servers": result.get("servers", {})}


def lab_cli(*args: str, cwd: Path, check: bool = False) -> subprocess.CompletedProcess:
    cwd.mkdir(parents=True, exist_ok=True)
    return subprocess.run([sys.executable, "-m", "grader", *args], cwd=cwd, capture_output=True, text=True,
                          check=check)


def summarise(samples: list[dict]) -> dict:
    def spread(values: list[float]) -> dict:
        return {"median": round(statistics.median(values), 3), "min": round(min(values), 3),
                "max": round(max(values), 3), "values": [round(v, 3) for v in values]}

    stages = list(dict.fromkeys(name for sample in samples for name in sample["stages"]))
    return {"wall": spread([s["wall"] for s in samples]),
            "stages": {name: spread([s["stages"].get(name, 0.0) for s in samples]) for name in stages},
            "overhead": spread([s["wall"] - sum(s["stages"].values()) for s in samples])}


def print_lab(lab: LabSpec, summary: dict, target: int | None, met: bool) -> None:
    print(f"\n{lab.slug} {lab.version}: median [min-max] seconds")
    print(f"  {'stage':<22}{'starter':>22}{'solution':>22}")
    rows = [(name, summary["starter"]["stages"][name], summary["solution"]["stages"][name])
            for name in summary["solution"]["stages"]]
    rows.append(("process start, report", summary["starter"]["overhead"], summary["solution"]["overhead"]))
    rows.append(("lab check (wall)", summary["starter"]["wall"], summary["solution"]["wall"]))
    for name, starter, solution in rows:
        print(f"  {name:<22}{cell(starter):>22}{cell(solution):>22}")
    print(f"  solution / starter (side by side): {summary['solution_to_starter']:.2f}")
    for service, description in summary["servers"].items():
        print(f"  {service}: {description}")
    if target is not None:
        median = summary["solution"]["wall"]["median"]
        print(f"  target: warm lab check on the solution, median <= {target}s: "
              f"{'met' if met else 'MISSED'} ({median:.1f}s)")
    for problem in summary["problems"]:
        print(f"  unexpected verdict: {problem}")


def cell(figures: dict) -> str:
    return f"{figures['median']:.2f} [{figures['min']:.2f}-{figures['max']:.2f}]"


def machine() -> dict:
    cpu = "unknown"
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    memory = "unknown"
    try:
        kib = int(next(line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines()
                       if line.startswith("MemTotal")))
        memory = f"{kib / 1024 / 1024:.1f} GiB"
    except (OSError, StopIteration, ValueError):
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    return {"cpu": cpu, "cores": os.cpu_count(), "memory": memory, "os": platform.platform(terse=True),
            "python": platform.python_version(), "load_1min_at_start": round(load, 2)}


if __name__ == "__main__":
    sys.exit(main())
