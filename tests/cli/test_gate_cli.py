"""``mity-cost gate``: the fast path, and a real subprocess asking a server in this test's QApplication."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import pytest
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from pytestqt.qtbot import QtBot

from mity_cost.cli import main
from mity_cost.core.gate import decisions, protocol
from mity_cost.core.gate.decisions import Decision
from mity_cost.ui.confirmation import ConfirmationController, ConfirmDialog
from mity_cost.ui.gate_server import GateServer
from tests.conftest import EXAMPLE_ROOT

TEMPLATE = EXAMPLE_ROOT / ".mity" / "chat" / "7a8b9c0d-1e2f-4a3b-9c4d-5e6f7a8b9c0d" / "cost.json"
SID = "gate-session"
CRASH = (
    "import os, socket, sys; s = socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); s.listen(); os._exit(1)"
)


def write_session(root: Path, total: float, session_id: str = SID) -> Path:
    doc = json.loads(TEMPLATE.read_text())
    doc["sessionId"] = session_id
    doc["sessionCost"]["total"] = {"min": total, "expected": total, "max": total}
    path = root / ".mity" / "chat" / session_id / "cost.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2))
    return path.parent


def shown(ctrl: ConfirmationController) -> ConfirmDialog | None:
    """The dialog on screen (a call, so that type narrowing never goes stale across actions)."""
    return ctrl.dialog


def dialog_of(ctrl: ConfirmationController) -> ConfirmDialog:
    """The dialog on screen; fails the test when there is none."""
    dialog = ctrl.dialog
    assert dialog is not None, "no confirmation dialog on screen"
    return dialog


def gate_args(root: Path, *extra: str) -> list[str]:
    return ["gate", "--root", str(root), "--session", SID, *extra]


def start_gate(root: Path, *extra: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "mity_cost", *gate_args(root, *extra)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )


def finish(qtbot: QtBot, proc: subprocess.Popen[str]) -> tuple[int, str, str]:
    qtbot.waitUntil(lambda: proc.poll() is not None, timeout=30_000)
    out, err = proc.communicate(timeout=10)
    return proc.returncode, out, err


@pytest.fixture
def root(tmp_path: Path) -> Path:
    folder = tmp_path / "root"
    folder.mkdir()
    return folder


@pytest.fixture
def app(qtbot: QtBot) -> Iterator[ConfirmationController]:
    """The app's side: a controller showing real dialogs, served on the confirmation socket."""
    controller = ConfirmationController(started_at=0.0)
    server = GateServer(controller)
    assert server.start(), server.error
    yield controller
    server.stop()
    if shown(controller) is not None:
        dialog_of(controller).hide()


# -- the fast path (no app needed) -------------------------------------------------------------------


def test_within_the_threshold_exits_0_at_once(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_session(root, 0.5)
    assert main(gate_args(root, "--estimate", "0.5")) == 0  # 1.00 is not over 1.00
    assert capsys.readouterr().err == ""


def test_within_what_was_approved_exits_0_at_once(root: Path) -> None:
    session_dir = write_session(root, 1.5)
    decisions.write_decision(session_dir, Decision(SID, "continue", 2.0, decisions.now()))
    assert main(gate_args(root, "--estimate", "0.4")) == 0


def test_json_says_why(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_session(root, 0.2)
    assert main(gate_args(root, "--estimate", "0.3", "--json")) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["answer"] == "approved" and doc["reason"] == "within"
    assert doc["estimate"] == 0.3 and doc["threshold"] == 1.0 and doc["exitCode"] == 0


def test_bad_usage_exits_2(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_session(root, 0.2)
    for args in (
        gate_args(root),  # no estimate at all
        gate_args(root, "--estimate", "-1"),
        gate_args(root, "--estimate", "nan"),
        gate_args(root, "--estimate", "1", "--model", "gpt-4o", "--input-tokens", "5"),
        gate_args(root, "--estimate", "0.1", "--timeout", "0"),
    ):
        with pytest.raises(SystemExit) as stopped:
            main(args)
        assert stopped.value.code == 2
    assert main(gate_args(root, "--estimate", "0.1", "--input-tokens", "5")) == 2
    assert main(gate_args(root, "--model", "gpt-4o")) == 2  # no token count
    assert "needs --input-tokens" in capsys.readouterr().err


def test_a_session_that_does_not_exist_exits_2(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(gate_args(root, "--estimate", "0.1")) == 2
    assert "no session" in capsys.readouterr().err


def test_model_and_tokens_are_priced(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from mity_cost.core.pricing.estimate import estimate

    write_session(root, 0.1)
    assert (
        main(gate_args(root, "--model", "gpt-5-mini", "--input-tokens", "2000", "--calls", "3", "--json"))
        == 0
    )
    priced = estimate("gpt-5-mini", 2000, None, 3)
    expected = max(priced.expected, priced.factory_cost.expected)
    assert json.loads(capsys.readouterr().out)["estimate"] == pytest.approx(expected)


# -- budgets (the HISTORY owner's hook) ----------------------------------------------------------------


def _session_budget(enforcement: Literal["hard_stop", "require_confirmation"], amount: float) -> None:
    from mity_cost.core.spending.budgets import Budget, add_budget

    add_budget(Budget("session", SID, "session", amount, "USD", enforcement))


def test_a_hard_stop_budget_refuses_without_asking(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_session(root, 0.3)
    _session_budget("hard_stop", 0.5)
    assert main(gate_args(root, "--estimate", "0.3")) == 1  # under the threshold, over the budget
    assert "refused by a budget" in capsys.readouterr().err
    assert main(gate_args(root, "--estimate", "0.1")) == 0  # within both


def test_a_budget_that_needs_confirmation_asks_the_app(
    root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_session(root, 0.3)
    _session_budget("require_confirmation", 0.5)
    assert main(gate_args(root, "--estimate", "0.3")) == 3  # it asks; no app runs: not approved
    err = capsys.readouterr().err
    assert "no mity-cost app is running" in err and "budget" in err


# -- no app: fail closed ---------------------------------------------------------------------------------


def test_no_app_exits_3_with_a_clear_message(root: Path) -> None:
    write_session(root, 0.9)
    done = subprocess.run(
        [sys.executable, "-m", "mity_cost", *gate_args(root, "--estimate", "0.3")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 3
    assert "no mity-cost app is running" in done.stderr
    assert "not approved" in done.stderr and "$0.90 + $0.30" in done.stderr


def test_a_socket_left_by_a_crash_exits_3(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_session(root, 0.9)
    path = protocol.socket_path()
    protocol.ensure_runtime_dir(path.parent)
    subprocess.run([sys.executable, "-c", CRASH, os.fspath(path)], check=False, timeout=30)
    assert main(gate_args(root, "--estimate", "0.3")) == 3
    assert "left over from a previous run" in capsys.readouterr().err


def test_a_paused_session_is_not_let_through_even_under_the_threshold(
    root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    session_dir = write_session(root, 0.1)
    decisions.write_decision(session_dir, Decision(SID, "pause", 0.1, decisions.now()))
    assert main(gate_args(root, "--estimate", "0.01")) == 3
    assert "paused by the user" in capsys.readouterr().err


# -- a real subprocess, the user answering in the dialog -----------------------------------------------------


def test_approved_in_the_dialog_exits_0(app: ConfirmationController, root: Path, qtbot: QtBot) -> None:
    session_dir = write_session(root, 0.9)
    proc = start_gate(root, "--estimate", "0.3", "--operation", "deploy to staging", "--json")
    qtbot.waitUntil(lambda: shown(app) is not None, timeout=30_000)
    dialog = shown(app)
    assert dialog is not None
    assert "deploy to staging: estimate $0.30" in dialog.operation.text()
    assert dialog.approves.text() == "Continue approves spending up to $2.00"
    QTest.mouseClick(dialog.continue_button, Qt.MouseButton.LeftButton)
    code, out, _ = finish(qtbot, proc)
    assert code == 0
    doc = json.loads(out)
    assert doc["answer"] == "approved" and doc["approvedUpTo"] == 2.0
    decision = json.loads((session_dir / "cost.decision.json").read_text())
    assert decision["decision"] == "continue" and decision["approvedUpTo"] == 2.0
    # what was approved now passes at once, without asking
    assert main(gate_args(root, "--estimate", "0.3")) == 0


def test_paused_in_the_dialog_exits_1(app: ConfirmationController, root: Path, qtbot: QtBot) -> None:
    session_dir = write_session(root, 0.9)
    proc = start_gate(root, "--estimate", "0.3")
    qtbot.waitUntil(lambda: shown(app) is not None, timeout=30_000)
    assert shown(app) is not None
    QTest.keyClick(dialog_of(app), Qt.Key.Key_Escape)
    code, _, err = finish(qtbot, proc)
    assert code == 1
    assert "denied" in err
    assert json.loads((session_dir / "cost.decision.json").read_text())["decision"] == "pause"


def test_timeout_exits_3_and_the_dialog_goes_away(
    app: ConfirmationController, root: Path, qtbot: QtBot
) -> None:
    session_dir = write_session(root, 0.9)
    proc = start_gate(root, "--estimate", "0.3", "--timeout", "1")
    qtbot.waitUntil(lambda: shown(app) is not None, timeout=30_000)
    code, _, err = finish(qtbot, proc)
    assert code == 3
    assert "no answer within 1 s" in err
    qtbot.waitUntil(lambda: shown(app) is None)
    assert not (session_dir / "cost.decision.json").exists()


def test_the_display_currency_travels_with_the_request(
    app: ConfirmationController, root: Path, qtbot: QtBot
) -> None:
    write_session(root, 0.9)
    proc = start_gate(root, "--estimate", "0.3", env={"MITY_COST_CURRENCY": "EUR"})
    qtbot.waitUntil(lambda: shown(app) is not None, timeout=30_000)
    # the app shows dollars (its settings); the operation's EUR 0.30 is converted, not mistaken for $0.30
    text = dialog_of(app).operation.text()
    assert "estimate $" in text and "$0.30" not in text
    app.answer("continue")
    assert finish(qtbot, proc)[0] == 0
