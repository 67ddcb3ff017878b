#!/usr/bin/env python3
"""`make bench`: how long `lab check` takes on each lab's starter and reference solution.

For every lab (or those named) and provider (`--provider local,docker` compares them):
one warm-up check of each side (it fills the caches and builds images), then RUNS checks
of each, interleaved provider by provider and starter/solution with the same seed per
round, each through the real CLI in a fresh process, as a learner runs it. Prints medians
with min-max and the per-stage breakdown, the ratios measured side by side (solution to
starter; docker to local), and the machine; writes the figures as JSON under build/bench/.
Also prints the figures the checks measured (statements per page, requests/s, p50...) for both sides,
as medians. Exit 1 when a target is missed (the lab's `[bench] solution_seconds` and `load_speedup`
on the local provider; docker at most DOCKER_TO_LOCAL times local) or a verdict is not the expected one.
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
NESTED = {"migrate"}  # timed inside "services" (the template is migrated while the services start)
DOCKER_TO_LOCAL = 2.0  # a warm check in containers may take at most this many times the local one


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("labs", nargs="*", help="lab slugs (default: every lab)")
    parser.add_argument("--runs", type=int, default=5, help="measured checks of each side (default 5)")
    parser.add_argument("--provider", default=os.environ.get("LAB_PROVIDER", "local"),
                        help="a provider, or several separated by commas to compare them (local,docker)")
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "bench", help="folder for the JSON figures")
    args = parser.parse_args()

    labs = [catalog.load(slug) for slug in args.labs] if args.labs else catalog.load_all()
    providers = [name.strip() for name in args.provider.split(",") if name.strip()]
    figures = {"machine": machine(), "providers": providers, "runs": args.runs,
               "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "labs": {}}
    print(f"bench · {len(labs)} lab(s) · {', '.join(providers)} · {args.runs} interleaved runs of each side "
          f"after one warm-up each")
    print("machine: " + " · ".join(f"{key} {value}" for key, value in figures["machine"].items()))
    missed = 0
    with tempfile.TemporaryDirectory(prefix="nexus-labs-bench-") as work:
        os.environ["LAB_STATE_DIR"] = str(Path(work) / "state")  # the user's progress is not the bench's
        for lab in labs:
            result = bench_lab(lab, Path(work), providers, args.runs)
            figures["labs"][lab.slug] = result
            missed += not result["ok"]
    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out / f"bench-{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}.json"
    out.write_text(json.dumps(figures, indent=2) + "\n")
    print(f"\nfigures: {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}")
    return 1 if missed else 0


def bench_lab(lab: LabSpec, work: Path, providers: list[str], runs: int) -> dict:
    workspaces = {side: prepare(lab, work / lab.slug, side) for side in EXPECTED_EXIT}
    problems: list[str] = []
    for provider in providers:  # warm-up: template clusters, images, bytecode, page cache
        for side, workspace in workspaces.items():
            check(workspace, provider, seed=1, side=side, problems=problems)
    samples: dict[str, dict[str, list[dict]]] = {p: {side: [] for side in EXPECTED_EXIT} for p in providers}
    for run in range(runs):
        for provider in providers:
            for side, workspace in workspaces.items():
                sample = check(workspace, provider, seed=1000 + run, side=side, problems=problems)
                samples[provider][side].append(sample)
                print(f"  {lab.slug} {provider:<8} {side:<8} run {run + 1}/{runs}: {sample['wall']:.1f}s", flush=True)

    summary: dict = {"problems": problems, "providers": {}}
    missed = []
    for provider in providers:
        figures = {side: summarise(side_samples) for side, side_samples in samples[provider].items()}
        figures["servers"] = samples[provider]["solution"][-1]["servers"]
        figures["solution_to_starter"] = round(figures["solution"]["wall"]["median"]
                                               / figures["starter"]["wall"]["median"], 2)
        summary["providers"][provider] = figures
        print_provider(lab, provider, figures)
    speedup = lab.bench.load_speedup
    if speedup is not None and "local" in providers:
        figures = summary["providers"]["local"]
        met, text = load_speedup(figures, speedup)
        print(f"  target: under the same load, the reference's requests/s and p50 at least {speedup:g} times the "
              f"starter's (local, medians): {'met' if met else 'MISSED'} ({text})")
        missed += [] if met else [f"load speed-up {text}"]
    rate = lab.bench.starter_failure_rate
    if rate is not None and "local" in providers:
        met, text = failure_rates(summary["providers"]["local"], rate)
        print(f"  target: under the same load, at least {rate:g}% of the starter's requests fail and none of the "
              f"reference's (local, medians): {'met' if met else 'MISSED'} ({text})")
        missed += [] if met else [f"failure rates {text}"]
    target = lab.bench.solution_seconds
    if target is not None and "local" in providers:
        median = summary["providers"]["local"]["solution"]["wall"]["median"]
        met = median <= target
        print(f"  target: warm lab check on the solution (local), median <= {target}s: "
              f"{'met' if met else 'MISSED'} ({median:.1f}s)")
        missed += [] if met else [f"local solution median {median:.1f}s > {target}s"]
    if "local" in providers and "docker" in providers:
        ratio = (summary["providers"]["docker"]["solution"]["wall"]["median"]
                 / summary["providers"]["local"]["solution"]["wall"]["median"])
        summary["docker_to_local"] = round(ratio, 2)
        met = ratio <= DOCKER_TO_LOCAL
        print(f"  target: docker / local on the solution, side by side, <= {DOCKER_TO_LOCAL:.1f}: "
              f"{'met' if met else 'MISSED'} ({ratio:.2f})")
        missed += [] if met else [f"docker is {ratio:.2f} times local"]
    for problem in problems:
        print(f"  unexpected verdict: {problem}")
    summary["missed"], summary["ok"] = missed, not missed and not problems
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
    figures = {f"{c['id']}: {row['name']}": row["yours"] for c in result["checks"] for row in c.get("figures", [])
               if isinstance(row.get("yours"), int | float)}
    return {"wall": wall, "stages": result["stages"], "servers": result.get("servers", {}), "figures": figures}


def lab_cli(*args: str, cwd: Path, check: bool = False) -> subprocess.CompletedProcess:
    cwd.mkdir(parents=True, exist_ok=True)
    return subprocess.run([sys.executable, "-m", "grader", *args], cwd=cwd, capture_output=True, text=True,
                          check=check)


def summarise(samples: list[dict]) -> dict:
    def spread(values: list[float]) -> dict:
        return {"median": round(statistics.median(values), 3), "min": round(min(values), 3),
                "max": round(max(values), 3), "values": [round(v, 3) for v in values]}

    stages = list(dict.fromkeys(name for sample in samples for name in sample["stages"]))
    names = list(dict.fromkeys(name for sample in samples for name in sample["figures"]))
    return {"wall": spread([s["wall"] for s in samples]),
            "stages": {name: spread([s["stages"].get(name, 0.0) for s in samples]) for name in stages},
            "figures": {name: spread([s["figures"][name] for s in samples if name in s["figures"]]) for name in names},
            "overhead": spread([s["wall"] - sum(t for name, t in s["stages"].items() if name not in NESTED)
                                for s in samples])}


def print_provider(lab: LabSpec, provider: str, summary: dict) -> None:
    print(f"\n{lab.slug} {lab.version} on {provider}: median [min-max] seconds")
    print(f"  {'stage':<22}{'starter':>22}{'solution':>22}")
    names = [name for name in dict.fromkeys([*summary["starter"]["stages"], *summary["solution"]["stages"]])
             if name not in NESTED]
    nested = [name for name in NESTED if name in summary["starter"]["stages"] or name in summary["solution"]["stages"]]
    if "services" in names:
        names[names.index("services") + 1:names.index("services") + 1] = nested
    rows = [(name, summary["starter"]["stages"].get(name), summary["solution"]["stages"].get(name)) for name in names]
    rows.append(("process start, report", summary["starter"]["overhead"], summary["solution"]["overhead"]))
    rows.append(("lab check (wall)", summary["starter"]["wall"], summary["solution"]["wall"]))
    for name, starter, solution in rows:
        label = f"  {name}" if name in NESTED else name  # indented: part of the stage above it
        print(f"  {label:<22}{cell(starter):>22}{cell(solution):>22}")
    print(f"  solution / starter (side by side): {summary['solution_to_starter']:.2f}")
    names = list(dict.fromkeys([*summary["starter"]["figures"], *summary["solution"]["figures"]]))
    if names:
        width = max(len(name) for name in [*names, "measured by the checks (median [min-max])"]) + 2
        print(f"  {'measured by the checks (median [min-max])':<{width}}{'starter':>26}{'solution':>22}")
        for name in names:
            print(f"  {name:<{width}}{figure_cell(summary['starter']['figures'].get(name)):>26}"
                  f"{figure_cell(summary['solution']['figures'].get(name)):>22}")
    for service, description in summary["servers"].items():
        print(f"  {service}: {description}")


def median_figure(summary: dict, side: str, figure: str) -> float | None:
    """The median of a figure the checks measured (named by its end, e.g. "requests/s"), or None."""
    found = [value for name, value in summary[side]["figures"].items() if name.endswith(f": {figure}")]
    return found[0]["median"] if found else None


def failure_rates(summary: dict, wanted: float) -> tuple[bool, str]:
    starter, solution = (median_figure(summary, side, "failure rate, %") for side in ("starter", "solution"))
    if starter is None or solution is None:
        return False, "no failure rate was measured"
    return starter >= wanted and solution == 0, f"starter {starter:g}%, reference {solution:g}%"


def load_speedup(summary: dict, wanted: float) -> tuple[bool, str]:
    """The reference against the starter under the lab's load: requests/s and p50 ratios of the medians."""
    starter_rps, solution_rps = (median_figure(summary, side, "requests/s") for side in ("starter", "solution"))
    starter_p50, solution_p50 = (median_figure(summary, side, "p50 ms") for side in ("starter", "solution"))
    if not solution_rps or not solution_p50:
        return False, "the solution has no load figures"
    if not starter_rps or not starter_p50:
        return True, "the starter completed no request under load"
    rps, p50 = solution_rps / starter_rps, starter_p50 / solution_p50
    summary["load_speedup"] = {"rps": round(rps, 1), "p50": round(p50, 1)}
    return rps >= wanted and p50 >= wanted, f"requests/s {rps:.1f}x, p50 {p50:.1f}x"


def cell(figures: dict | None) -> str:
    if figures is None:
        return "-"
    return f"{figures['median']:.2f} [{figures['min']:.2f}-{figures['max']:.2f}]"


def figure_cell(figures: dict | None) -> str:
    if not figures or not figures["values"]:
        return "-"
    def text(value: float) -> str:
        return f"{value:,.0f}" if abs(value) >= 100 or float(value).is_integer() else f"{value:,.1f}"
    if figures["min"] == figures["max"]:
        return text(figures["median"])
    return f"{text(figures['median'])} [{text(figures['min'])}-{text(figures['max'])}]"


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
