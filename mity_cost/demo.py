"""The built-in demo: a copy of the example workspace, and a simulated factory writing to it.

``mity-cost tray --demo`` calls :func:`start_demo`, which extracts the example workspace into a
temporary root and starts ``python -m mity_cost.demo`` beside the app: a separate process that keeps
adding LLM calls and executions to a new session in the factory's format, as the factory would
(mostly atomic saves, some plain overwrites that a reader can catch half-written), so the badge
climbs, warnings fire and the confirmation dialog appears within a minute.  It honours the user's
answer: after "Pause" it stops spending until the user continues.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path, PurePosixPath

from mity_cost.core.factory import layout

DEMO_MODELS: tuple[tuple[str, int, int, float], ...] = (
    # (model name as an agent would give it, typical input tokens, typical output tokens, weight)
    ("gpt-5-mini", 6000, 2500, 3.0),
    ("claude-sonnet-4.5", 5000, 1800, 3.0),
    ("gpt-4.1", 7000, 1500, 2.0),
    ("claude-opus-4.5", 3500, 1200, 1.0),
    ("gpt-4o", 4000, 1000, 1.0),
    ("gpt-5-nano", 9000, 3000, 1.5),
)
DEMO_AGENTS: tuple[tuple[str, str], ...] = (
    ("Analyst", "analyze"),
    ("Architect", "architect"),
    ("Implementer", "implement"),
    ("Tester", "test"),
    ("Reviewer", "review"),
)
DEMO_FEATURES: tuple[str, ...] = ("User Authentication", "Order History & Export")
EXECUTION_KINDS: tuple[str, ...] = ("build", "test", "scan", "iac")


def extract_workspace(target: Path) -> Path:
    """Extract the packaged example workspace into ``target`` (member names are checked)."""
    target.mkdir(parents=True, exist_ok=True)
    archive = resources.files("mity_cost").joinpath("assets/demo/workspace.zip")
    with resources.as_file(archive) as zip_path, zipfile.ZipFile(zip_path) as bundle:
        for member in bundle.infolist():
            parts = PurePosixPath(member.filename).parts
            if member.is_dir() or not parts or any(not layout.safe_name(p) for p in parts):
                continue
            destination = target.joinpath(*parts)
            destination.parent.mkdir(parents=True, exist_ok=True)
            destination.write_bytes(bundle.read(member))
            # Keep the archive's dates: the examples are past sessions, not ones changing right now
            # (the app asks for confirmation only about sessions it sees change).
            stamp = time.mktime((*member.date_time, 0, 0, -1))
            os.utime(destination, (stamp, stamp))
    return target


def _plain_overwrite(path: Path, pause: float) -> None:
    """Rewrite a file in place in two halves, as a non-atomic writer does (readers may catch half)."""
    data = path.read_bytes()
    half = len(data) // 2
    with open(path, "wb") as handle:
        handle.write(data[:half])
        handle.flush()
        time.sleep(pause)
        handle.write(data[half:])


def _paused(session_dir: Path) -> bool:
    """True while the user's latest answer for this session is "pause"."""
    try:
        decision = json.loads((session_dir / layout.DECISION_FILE).read_text("utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(decision, dict) and decision.get("decision") == "pause"


@dataclass
class Simulator:
    """A simulated factory run: one new session that keeps spending."""

    root: Path
    session_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    interval: float = 1.2
    plain_write_every: int = 4
    rng: random.Random = field(default_factory=random.Random)
    steps_done: int = 0

    def step(self) -> str:
        """Do one unit of work (an LLM call, sometimes an execution); returns what it did."""
        from mity_cost.core.factory import writing

        self.steps_done += 1
        if self.steps_done == 1:
            writing.update_infra(self.root, self.session_id, "backend_api_with_db")
            return "infra estimate: backend_api_with_db"
        if self.rng.random() < 0.15:
            kind = self.rng.choice(EXECUTION_KINDS)
            writing.record_execution(self.root, self.session_id, kind, cloud=self.rng.random() < 0.3)
            did = f"execution: {kind}"
        else:
            names, inputs, outputs, weights = zip(*DEMO_MODELS, strict=True)
            index = self.rng.choices(range(len(names)), weights=weights)[0]
            agent, station = self.rng.choice(DEMO_AGENTS)
            tokens_in = int(inputs[index] * self.rng.uniform(0.4, 1.6))
            tokens_out = int(outputs[index] * self.rng.uniform(0.4, 1.6))
            writing.record_llm(
                self.root,
                self.session_id,
                names[index],
                tokens_in,
                tokens_out,
                agent=agent,
                station=station,
                feature=self.rng.choice(DEMO_FEATURES),
            )
            did = f"llm: {names[index]} {tokens_in}+{tokens_out} tokens ({agent})"
        if self.plain_write_every and self.steps_done % self.plain_write_every == 0:
            _plain_overwrite(layout.session_path(self.root, self.session_id), pause=0.05)
            did += " (plain overwrite)"
        return did

    def run(self, steps: int | None = None) -> None:
        """Keep working until ``steps`` are done (forever when ``None``); idle while paused."""
        session_dir = layout.session_path(self.root, self.session_id).parent
        while steps is None or self.steps_done < steps:
            if _paused(session_dir):
                time.sleep(self.interval)
                continue
            print(f"[demo factory] {self.step()}", flush=True)
            time.sleep(self.interval * self.rng.uniform(0.6, 1.4))


@dataclass
class DemoRun:
    """A running demo: its temporary root and the simulated factory's process."""

    root: Path
    process: subprocess.Popen[bytes] | None
    owns_root: bool = True

    def stop(self) -> None:
        """Stop the simulated factory and remove the temporary root."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=3)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=3)
        if self.owns_root:
            shutil.rmtree(self.root.parent if self.root.name == "factory" else self.root, ignore_errors=True)


def start_demo(root: Path | None = None, interval: float = 1.2, simulate: bool = True) -> DemoRun:
    """Extract the example workspace (to a temporary root unless given) and start the simulated factory."""
    owns = root is None
    target = Path(tempfile.mkdtemp(prefix="mity-cost-demo-")) / "factory" if root is None else root
    extract_workspace(target)
    process = None
    if simulate:
        process = subprocess.Popen(
            [sys.executable, "-m", "mity_cost.demo", "--root", str(target), "--interval", str(interval)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    return DemoRun(target, process, owns)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m mity_cost.demo --root DIR``: run the simulated factory in the foreground."""
    parser = argparse.ArgumentParser(prog="python -m mity_cost.demo", description=__doc__)
    parser.add_argument("--root", type=Path, required=True, help="factory root to write to")
    parser.add_argument("--interval", type=float, default=1.2, help="seconds between steps (about)")
    parser.add_argument("--steps", type=int, default=None, help="stop after this many steps")
    parser.add_argument("--seed", type=int, default=None, help="random seed (repeatable runs)")
    parser.add_argument("--extract", action="store_true", help="first extract the example workspace")
    args = parser.parse_args(argv)
    if args.extract:
        extract_workspace(args.root)
    simulator = Simulator(args.root, interval=args.interval, rng=random.Random(args.seed))
    print(f"[demo factory] writing session {simulator.session_id} under {args.root}", flush=True)
    try:
        simulator.run(args.steps)
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
