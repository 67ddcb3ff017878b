#!/usr/bin/env python3
"""`make bench`: how long `lab check` takes on each lab's starter and reference solution.

For every lab (or those named) and provider (`--provider local,docker` compares them):
one warm-up check of each side (it fills the caches and builds images), then RUNS checks
of each, interleaved provider by provider and starter/solution with the same seed per
round, each through the real CLI in a fresh process, as a learner runs it. Prints medians
with min-max and the per-stage breakdown, the ratios measured side by side (solution to
starter; docker to local), and the machine; writes the figures as JSON under build/bench/.
Also prints the figures the checks measured (statements per page, requests/s, p50...) for both sides,
as medians, and each side's floor: what `lab check` would take if every check overlapped the others
perfectly (the setup and teardown stages, the checks' pytest start, the longest check, the process's own
start and report), with the solution's gap to it. Before the labs, times the CLI's start-up (`lab --help`,
`lab list`; `--no-cli` skips it). Exit 1 when a target is missed (the lab's `[bench] solution_seconds` and
`load_speedup` on the local provider; docker at most DOCKER_TO_LOCAL times local; `lab --help` under
HELP_SECONDS) or a verdict is not the expected one.
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
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from grader import catalog  # noqa: E402
from grader.labspec import LabSpec  # noqa: E402
from grader.resources import resources  # noqa: E402
from grader.results import NESTED_STAGES  # noqa: E402

EXPECTED_EXIT = {"starter": 1, "solution": 0}
# A stage timed inside another, and that parent: the template is migrated while the services start, and the
# hidden checks' pytest starts within "checks". A nested stage's time is already in its parent's.
NESTED = NESTED_STAGES
OVERLAPPABLE = "checks"  # the stage the floor replaces by its pytest start and its longest check
DOCKER_TO_LOCAL = 1.3  # a warm check in containers may take at most this many times the local one
HELP_SECONDS = 0.2  # `lab --help` must answer within this, warm
CLI_RUNS = 7  # timed runs of each start-up command, after one warm-up


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("labs", nargs="*", help="lab slugs (default: every lab)")
    parser.add_argument("--runs", type=int, default=5, help="measured checks of each side (default 5)")
    parser.add_argument("--provider", default=os.environ.get("LAB_PROVIDER", "local"),
                        help="a provider, or several separated by commas to compare them (local,docker)")
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "bench", help="folder for the JSON figures")
    parser.add_argument("--no-cli", action="store_true", help="skip timing the CLI's start-up (lab --help, lab list)")
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
        if not args.no_cli:
            figures["cli"] = bench_cli(Path(work))
            missed += not figures["cli"]["ok"]
        for lab in labs:
            result = bench_lab(lab, Path(work), providers, args.runs)
            figures["labs"][lab.slug] = result
            missed += not result["ok"]
    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out / f"bench-{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}.json"
    out.write_text(json.dumps(figures, indent=2) + "\n")
    print(f"\nfigures: {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}")
    return 1 if missed else 0


def bench_cli(work: Path) -> dict:
    """The CLI's start-up, warm: `python -m grader --help`, and the `lab` console script's `--help` and `list`."""
    commands = {"python -m grader --help": [sys.executable, "-m", "grader", "--help"]}
    script = Path(sys.executable).parent / "lab"  # installed beside the interpreter, as a learner runs it
    if script.exists():
        commands |= {"lab --help": [str(script), "--help"], "lab list": [str(script), "list"]}
    print(f"\nCLI start-up: median [min-max] seconds of {CLI_RUNS} runs after one warm-up")
    timings: dict[str, dict] = {}
    problems: list[str] = []
    for name, command in commands.items():
        seconds = []
        for run in range(CLI_RUNS + 1):
            started = time.perf_counter()
            process = subprocess.run(command, cwd=work, capture_output=True, text=True)
            elapsed = time.perf_counter() - started
            if process.returncode != 0:
                problems.append(f"{name}: exit {process.returncode}: {process.stderr.strip()[-300:]}")
                break
            if run:  # the first fills the page cache and writes the bytecode
                seconds.append(elapsed)
        if seconds:
            timings[name] = spread(seconds)
            print(f"  {name:<24}{cell(timings[name]):>22}")
    timed = "lab --help" if "lab --help" in timings else "python -m grader --help"
    median = timings[timed]["median"] if timed in timings else None
    met = median is not None and median < HELP_SECONDS
    shown = f"{median:.2f} s" if median is not None else "not measured"
    print(f"  target: lab --help under {HELP_SECONDS:g} s: {'met' if met else 'MISSED'} "
          f"({shown}{'' if timed == 'lab --help' else f', as {timed}: no lab script beside {sys.executable}'})")
    for problem in problems:
        print(f"  unexpected exit: {problem}")
    return {"runs": CLI_RUNS, "commands": timings, "target": {"command": timed, "seconds": HELP_SECONDS,
                                                              "median": median, "met": met},
            "problems": problems, "ok": met and not problems}


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
    durations = {c["id"]: float(c.get("duration") or 0.0) for c in result["checks"]}
    return {"wall": wall, "stages": result["stages"], "servers": result.get("servers", {}), "figures": figures,
            "durations": durations}


def lab_cli(*args: str, cwd: Path, check: bool = False) -> subprocess.CompletedProcess:
    cwd.mkdir(parents=True, exist_ok=True)
    return subprocess.run([sys.executable, "-m", "grader", *args], cwd=cwd, capture_output=True, text=True,
                          check=check)


def spread(values: list[float]) -> dict:
    return {"median": round(statistics.median(values), 3), "min": round(min(values), 3),
            "max": round(max(values), 3), "values": [round(v, 3) for v in values]}


def summarise(samples: list[dict]) -> dict:
    stages = list(dict.fromkeys(name for sample in samples for name in sample["stages"]))
    names = list(dict.fromkeys(name for sample in samples for name in sample["figures"]))
    return {"wall": spread([s["wall"] for s in samples]),
            "stages": {name: spread([s["stages"].get(name, 0.0) for s in samples]) for name in stages},
            "figures": {name: spread([s["figures"][name] for s in samples if name in s["figures"]]) for name in names},
            "overhead": spread([overhead(s) for s in samples]),
            "floor": summarise_floor(samples)}


def overhead(sample: dict) -> float:
    """The CLI process's own start and report: the wall time outside every stage."""
    return sample["wall"] - sum(t for name, t in sample["stages"].items() if name not in NESTED)


def floor_parts(sample: dict) -> tuple[dict[str, float], str | None]:
    """What one run would take had every check overlapped the others perfectly, part by part, and its
    longest check. Setup and teardown stay as measured; a check that waits (a token's lifetime, a load run)
    cannot be shortened by overlapping, so the longest one is the lab's own wait."""
    parts: dict[str, float] = {}
    longest = max(sample["durations"].items(), key=lambda item: item[1], default=(None, 0.0))
    for name, seconds in sample["stages"].items():
        if name in NESTED:
            continue
        if name == OVERLAPPABLE:
            parts["pytest start"] = sample["stages"].get("pytest start", 0.0)  # 0 where the run does not time it
            parts["longest check"] = longest[1]
        else:
            parts[name] = seconds
    parts["process"] = overhead(sample)
    return parts, longest[0]


def summarise_floor(samples: list[dict]) -> dict:
    """Each run's floor, then medians: the total, its parts, and the check most often the longest."""
    floors = [floor_parts(sample) for sample in samples]
    names = list(dict.fromkeys(name for parts, _ in floors for name in parts))
    ids = [longest for _, longest in floors]
    total = spread([sum(parts.values()) for parts, _ in floors])
    wall = statistics.median(s["wall"] for s in samples)
    gap = wall - total["median"]
    return {"total": total, "parts": {name: spread([parts.get(name, 0.0) for parts, _ in floors]) for name in names},
            "longest_check": Counter(ids).most_common(1)[0][0], "longest_checks": ids,
            "pytest_start_measured": all("pytest start" in s["stages"] for s in samples),
            "gap": {"seconds": round(gap, 3), "percent_of_wall": round(100 * gap / wall, 1) if wall else None}}


def print_provider(lab: LabSpec, provider: str, summary: dict) -> None:
    print(f"\n{lab.slug} {lab.version} on {provider}: median [min-max] seconds")
    measured = list(dict.fromkeys([*summary["starter"]["stages"], *summary["solution"]["stages"]]))
    names = []
    for name in (name for name in measured if name not in NESTED):
        names += [name, *(child for child in measured if NESTED.get(child) == name)]  # each under its parent
    rows = [(name, summary["starter"]["stages"].get(name), summary["solution"]["stages"].get(name)) for name in names]
    rows.append(("process start, report", summary["starter"]["overhead"], summary["solution"]["overhead"]))
    rows.append(("lab check (wall)", summary["starter"]["wall"], summary["solution"]["wall"]))
    rows.append(("floor (setup + pytest start + longest check + process)", summary["starter"]["floor"]["total"],
                 summary["solution"]["floor"]["total"]))
    width = max(len(name) for name, _, _ in rows) + 2
    print(f"  {'stage':<{width}}{'starter':>22}{'solution':>22}")
    for name, starter, solution in rows:
        label = f"  {name}" if name in NESTED else name  # indented: part of the stage above it
        print(f"  {label:<{width}}{cell(starter):>22}{cell(solution):>22}")
    floor = summary["solution"]["floor"]
    print(f"  gap to floor (solution): {floor['gap']['seconds']:.1f} s ({floor['gap']['percent_of_wall']:.0f}% "
          f"of the wall: what overlapping the checks could still save)")
    print(f"  floor parts (solution): {floor_text(floor)}")
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


def floor_text(floor: dict) -> str:
    """The floor's parts in one line, e.g. `services 1.2 · pytest start 0.6 · longest check tokens-expire 5.0`."""
    texts = []
    for name, figures in floor["parts"].items():
        if name == "longest check":
            texts.append(f"longest check {floor['longest_check'] or '(none ran)'} {figures['median']:.1f}")
        elif name == "pytest start" and not floor["pytest_start_measured"]:
            texts.append("pytest start 0 (not in every run's stages: counted 0)")
        elif figures["median"] >= 0.05 or name == "pytest start":  # a part that rounds to nothing is left out
            texts.append(f"{name} {figures['median']:.1f}")
    return " · ".join(texts)


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
