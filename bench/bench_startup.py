"""Start-up time of the commands agents call often, against a bare ``python3 -c pass``.

Goal (issue 2, point 7): ``check-threshold``, ``gate`` under the threshold and ``record-llm`` take at
most 3x a bare interpreter start.  Every command and the baseline are run round-robin (so drift hits
all of them alike) ``--runs`` times in the same process; medians and ratios are printed (the goal),
and the 95th percentiles with their ratio to the baseline's (how reliably it is met on a noisy machine).

    /work/venv/bin/python bench/bench_startup.py [--runs 30] [--json]

The baseline is the same interpreter as the commands (``sys.executable -c pass``, so both pay the
same ``site`` start-up, e.g. an editable install's import hook); ``-I -S -c pass`` (no ``site`` at all)
is printed too, for reference.  Modules are compiled once into a private ``PYTHONPYCACHEPREFIX``
(as in an installed package, whose ``.pyc`` files pip writes); ``--no-bytecode`` measures a checkout
run with ``PYTHONDONTWRITEBYTECODE=1`` instead, where every start compiles every module.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
SESSION = "bench-session"
GOAL = 3.0


def _example_root() -> Path | None:
    for candidate in (os.environ.get("MITY_COST_SPEC", ""), REPO.parent / "shared" / "spec", REPO / "spec"):
        if candidate and (Path(candidate) / "examples" / "workspace").is_dir():
            return Path(candidate) / "examples" / "workspace"
    return None


def _prepare(folder: Path) -> Path:
    """A root with one session that has a few records (copied examples when available)."""
    root = folder / "root"
    example = _example_root()
    if example is not None:
        shutil.copytree(example, root)
        for path in root.rglob("*"):
            path.chmod(0o755 if path.is_dir() else 0o644)
        root.chmod(0o755)
    root.mkdir(exist_ok=True)
    env = {**os.environ, "MITY_COST_HOME": str(folder / "home")}
    for _ in range(3):
        subprocess.run(
            [sys.executable, "-m", "mity_cost", "record-llm", "--root", str(root), "--session", SESSION,
             "--model", "gpt-5-mini", "--input-tokens", "1000", "--output-tokens", "200"],
            check=True, env=env, capture_output=True,
        )  # fmt: skip
    return root


def _time(cmd: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, check=False)
    return time.perf_counter() - start


def _p95(times: list[float]) -> float:
    return statistics.quantiles(times, n=20)[18] if len(times) > 1 else times[0]


def _commands(root: Path, has_gate: bool) -> dict[str, list[str]]:
    py = sys.executable
    base = [py, "-m", "mity_cost"]
    where = ["--root", str(root), "--session", SESSION]
    commands = {
        "python3 -c pass": [py, "-c", "pass"],
        "python3 -I -S -c pass (no site)": [py, "-I", "-S", "-c", "pass"],
        "check-threshold": [*base, "check-threshold", *where],
        "record-llm": [*base, "record-llm", *where, "--model", "gpt-5-mini",
                       "--input-tokens", "1200", "--output-tokens", "300"],
    }  # fmt: skip
    if has_gate:
        commands["gate (under the threshold)"] = [
            *base,
            "gate",
            *where,
            "--estimate",
            "0.001",
            "--timeout",
            "1",
        ]
    commands["--help (every command registered)"] = [*base, "--help"]
    return commands


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; exit 1 when a hot command misses the goal."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=30, help="runs of each command (default 30)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument(
        "--no-bytecode",
        action="store_true",
        help="compile every module at every start (PYTHONDONTWRITEBYTECODE=1), unlike an installed package",
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="mity-bench-") as tmp:
        folder = Path(tmp)
        root = _prepare(folder)
        env = {**os.environ, "MITY_COST_HOME": str(folder / "home"), "MITY_COST_THRESHOLD": "1000"}
        if args.no_bytecode:
            env["PYTHONDONTWRITEBYTECODE"] = "1"
        else:  # as installed: compiled once (into a private cache, the checkout stays untouched)
            env.pop("PYTHONDONTWRITEBYTECODE", None)
            env["PYTHONPYCACHEPREFIX"] = str(folder / "pycache")
        has_gate = (REPO / "mity_cost" / "cli" / "gate.py").exists()
        commands = _commands(root, has_gate)
        for cmd in commands.values():  # warm the file cache and .pyc files
            _time(cmd, env)
        samples: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(args.runs):
            for name, cmd in commands.items():
                samples[name].append(_time(cmd, env))
    base = statistics.median(samples["python3 -c pass"])
    base_p95 = _p95(samples["python3 -c pass"])
    rows: list[dict[str, Any]] = []
    for name, times in samples.items():
        median = statistics.median(times)
        p95 = _p95(times)
        rows.append(
            {
                "command": name,
                "median_ms": median * 1000,
                "ratio": median / base,
                "p95_ms": p95 * 1000,
                "p95_ratio": p95 / base_p95,
            }
        )
    hot = [r for r in rows if r["command"] in ("check-threshold", "record-llm", "gate (under the threshold)")]
    ok = all(r["ratio"] <= GOAL for r in hot)
    if args.json:
        figures = {"runs": args.runs, "bytecode": not args.no_bytecode, "python": sys.version.split()[0]}
        print(json.dumps({**figures, "goal": GOAL, "ok": ok, "rows": rows}, indent=2))
    else:
        mode = "no bytecode cache" if args.no_bytecode else "bytecode cached"
        print(f"Python {sys.version.split()[0]}, {mode}, {args.runs} runs each, medians (goal: <= {GOAL}x)")
        print(f"  {'':<36} {'median':>11}  {'ratio':>5}  {'p95':>11}  {'ratio':>5}")
        for r in rows:
            print(
                f"  {r['command']:<36} {r['median_ms']:8.1f} ms  {r['ratio']:5.2f}x"
                f"  {r['p95_ms']:8.1f} ms  {r['p95_ratio']:5.2f}x"
            )
        print("goal met" if ok else "GOAL MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
