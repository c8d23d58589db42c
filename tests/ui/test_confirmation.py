"""The confirmation: one dialog per session, never a stack; the answer in cost.decision.json."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QDialog
from pytestqt.qtbot import QtBot

from mity_cost.core.factory.loading import LoadedSession, load_session
from mity_cost.core.gate import decisions
from mity_cost.core.gate.decisions import Decision
from mity_cost.core.live.snapshot import SessionView, Snapshot
from mity_cost.core.settings import Settings
from mity_cost.ui.confirmation import MAX_WAITING, ConfirmationController, ConfirmDialog, Verdict
from tests.conftest import EXAMPLE_ROOT

TEMPLATE = EXAMPLE_ROOT / ".mity" / "chat" / "7a8b9c0d-1e2f-4a3b-9c4d-5e6f7a8b9c0d" / "cost.json"
SID = "s-one"
OTHER = "s-two"
USD = Settings(threshold=1.0)


def write_session(root: Path, session_id: str, total: float) -> SessionView:
    """A factory session file with this expected total (range +-10 %), and its view."""
    doc = json.loads(TEMPLATE.read_text())
    doc["sessionId"] = session_id
    doc["sessionCost"]["total"] = {"min": total * 0.9, "expected": total, "max": total * 1.1}
    path = root / ".mity" / "chat" / session_id / "cost.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2))
    loaded = load_session(path)
    assert isinstance(loaded, LoadedSession)
    return SessionView(key=str(path), root=root, session_dir=path.parent, loaded=loaded)


def shown(ctrl: ConfirmationController) -> ConfirmDialog | None:
    """The dialog on screen (a call, so that type narrowing never goes stale across actions)."""
    return ctrl.dialog


def dialog_of(ctrl: ConfirmationController) -> ConfirmDialog:
    """The dialog on screen; fails the test when there is none."""
    dialog = ctrl.dialog
    assert dialog is not None, "no confirmation dialog on screen"
    return dialog


def snapshot(*views: SessionView) -> Snapshot:
    return Snapshot(sessions=views)


def visible_dialogs() -> list[QDialog]:
    return [w for w in QApplication.topLevelWidgets() if isinstance(w, QDialog) and w.isVisible()]


def decision_doc(view: SessionView) -> dict[str, object]:
    loaded: dict[str, object] = json.loads((view.session_dir / "cost.decision.json").read_text())
    return loaded


@pytest.fixture
def root(tmp_path: Path) -> Path:
    folder = tmp_path / "root"
    folder.mkdir()
    return folder


@pytest.fixture
def controller(qtbot: QtBot) -> Iterator[ConfirmationController]:
    ctrl = ConfirmationController(started_at=0.0)
    yield ctrl
    if shown(ctrl) is not None:
        dialog_of(ctrl).hide()


class Replies:
    """Collects verdicts sent to waiting operations."""

    def __init__(self) -> None:
        self.got: list[Verdict] = []

    def __call__(self, verdict: Verdict) -> None:
        self.got.append(verdict)


def test_nothing_under_the_threshold(controller: ConfirmationController, root: Path) -> None:
    controller.on_snapshot(snapshot(write_session(root, SID, 1.0)), USD)  # not strictly over
    assert shown(controller) is None
    assert visible_dialogs() == []


def test_a_crossing_opens_one_window_modal_dialog_with_the_figures(
    controller: ConfirmationController, root: Path, qtbot: QtBot
) -> None:
    with qtbot.waitSignal(controller.asked) as asked:
        controller.on_snapshot(snapshot(write_session(root, SID, 1.2)), USD)
    assert asked.args == [SID]
    dialog = shown(controller)
    assert isinstance(dialog, ConfirmDialog)
    assert dialog.isModal() and dialog.windowModality() == Qt.WindowModality.WindowModal
    assert "over its cost threshold" in dialog.title.text()
    assert SID in dialog.session.text()
    assert dialog.total.text() == "$1.20"
    assert dialog.total_range.text() == "range $1.08 – $1.32"
    assert dialog.threshold.text() == "$1.00"
    assert dialog.approves.text() == "Continue approves spending up to $2.00"
    assert dialog.pause_button.isDefault() and not dialog.continue_button.isDefault()
    assert dialog.total.font().pointSize() > dialog.session.font().pointSize()
    assert dialog.windowTitle() == "mity-cost: confirm spending"
    assert not dialog.operation.isVisibleTo(dialog)


def test_a_further_crossing_updates_the_open_dialog_instead_of_stacking(
    controller: ConfirmationController, root: Path
) -> None:
    controller.on_snapshot(snapshot(write_session(root, SID, 1.2)), USD)
    first = shown(controller)
    controller.on_snapshot(snapshot(write_session(root, SID, 2.4)), USD)
    assert shown(controller) is first
    assert len(visible_dialogs()) == 1
    assert first is not None and first.total.text() == "$2.40"
    assert first.approves.text() == "Continue approves spending up to $3.00"


def test_continue_writes_the_decision_and_approves_the_next_step(
    controller: ConfirmationController, root: Path, qtbot: QtBot
) -> None:
    view = write_session(root, SID, 1.2)
    controller.on_snapshot(snapshot(view), USD)
    assert shown(controller) is not None
    with qtbot.waitSignal(controller.decided) as decided:
        QTest.mouseClick(dialog_of(controller).continue_button, Qt.MouseButton.LeftButton)
    assert decided.args == [SID, "continue"]
    doc = decision_doc(view)
    assert doc["sessionId"] == SID and doc["decision"] == "continue"
    assert doc["approvedUpTo"] == 2.0 and doc["currency"] == "USD"
    assert str(doc["decidedAt"]).endswith("Z")
    assert decisions.read_decision(view.session_dir, SID) is not None
    assert shown(controller) is None

    controller.on_snapshot(snapshot(write_session(root, SID, 1.9)), USD)
    controller.on_snapshot(snapshot(write_session(root, SID, 2.0)), USD)
    assert shown(controller) is None  # within what was approved: no new dialog
    controller.on_snapshot(snapshot(write_session(root, SID, 2.1)), USD)
    assert shown(controller) is not None  # the approved step is crossed: ask again
    assert "approved so far: up to $2.00" in dialog_of(controller).threshold.text()
    assert dialog_of(controller).approves.text() == "Continue approves spending up to $3.00"


def test_escape_means_pause(controller: ConfirmationController, root: Path, qtbot: QtBot) -> None:
    view = write_session(root, SID, 1.5)
    controller.on_snapshot(snapshot(view), USD)
    dialog = shown(controller)
    assert dialog is not None
    with qtbot.waitSignal(controller.decided) as decided:
        QTest.keyClick(dialog, Qt.Key.Key_Escape)
    assert decided.args == [SID, "pause"]
    doc = decision_doc(view)
    assert doc["decision"] == "pause"
    assert doc["approvedUpTo"] == 1.5  # nothing more than what is spent
    assert not dialog.isVisible()


def test_closing_the_window_means_pause(controller: ConfirmationController, root: Path, qtbot: QtBot) -> None:
    view = write_session(root, SID, 1.5)
    controller.on_snapshot(snapshot(view), USD)
    assert shown(controller) is not None
    with qtbot.waitSignal(controller.decided):
        dialog_of(controller).close()
    assert decision_doc(view)["decision"] == "pause"


def test_raise_dialog_only_when_one_waits(controller: ConfirmationController, root: Path) -> None:
    assert not controller.raise_dialog()
    controller.on_snapshot(snapshot(write_session(root, SID, 1.2)), USD)
    assert controller.raise_dialog()


def test_after_pause_the_same_step_does_not_ask_again_but_the_next_does(
    controller: ConfirmationController, root: Path
) -> None:
    controller.on_snapshot(snapshot(write_session(root, SID, 1.2)), USD)
    controller.answer("pause")
    controller.on_snapshot(snapshot(write_session(root, SID, 1.6)), USD)
    assert shown(controller) is None
    controller.on_snapshot(snapshot(write_session(root, SID, 2.2)), USD)
    assert shown(controller) is not None


def test_a_repeated_snapshot_does_not_ask_twice(controller: ConfirmationController, root: Path) -> None:
    view = write_session(root, SID, 1.2)
    controller.on_snapshot(snapshot(view), USD)
    controller.answer("continue")
    decided = []
    controller.decided.connect(lambda *args: decided.append(args))
    for _ in range(3):
        controller.on_snapshot(snapshot(view), USD)
    assert shown(controller) is None and decided == []


def test_sessions_not_written_since_start_do_not_ask_until_they_change(qtbot: QtBot, root: Path) -> None:
    view = write_session(root, SID, 5.0)  # over the threshold, but from before the app started
    ctrl = ConfirmationController(started_at=time.time() + 60)
    ctrl.on_snapshot(snapshot(view), USD)
    assert shown(ctrl) is None
    path = root / ".mity" / "chat" / SID / "cost.json"
    later = time.time() + 120
    os.utime(path, (later, later))  # the factory writes it again while the app runs
    fresh = load_session(path)
    assert isinstance(fresh, LoadedSession)
    ctrl.on_snapshot(snapshot(SessionView(SID, root, view.session_dir, fresh)), USD)
    assert shown(ctrl) is not None
    dialog_of(ctrl).hide()


def test_a_session_paused_before_start_is_not_asked_again_at_the_same_step(
    controller: ConfirmationController, root: Path
) -> None:
    view = write_session(root, SID, 1.4)
    decisions.write_decision(view.session_dir, Decision(SID, "pause", 1.3, decisions.now()))
    controller.on_snapshot(snapshot(view), USD)
    assert shown(controller) is None
    controller.on_snapshot(snapshot(write_session(root, SID, 2.3)), USD)
    assert shown(controller) is not None


def test_a_broken_decision_file_approves_nothing(controller: ConfirmationController, root: Path) -> None:
    view = write_session(root, SID, 1.4)
    (view.session_dir / "cost.decision.json").write_text('{"sessionId": "s-one", "decision": "contin')
    controller.on_snapshot(snapshot(view), USD)
    assert shown(controller) is not None


def test_two_sessions_get_one_dialog_at_a_time(controller: ConfirmationController, root: Path) -> None:
    one, two = write_session(root, SID, 1.2), write_session(root, OTHER, 1.7)
    controller.on_snapshot(snapshot(one, two), USD)
    assert len(visible_dialogs()) == 1
    assert controller.waiting_sessions == (SID, OTHER)
    dialog = shown(controller)
    assert dialog is not None and SID in dialog.session.text()
    assert "1 more session" in dialog.queued.text()
    controller.answer("continue")
    assert shown(controller) is dialog and OTHER in dialog.session.text()
    assert len(visible_dialogs()) == 1
    controller.answer("pause")
    assert shown(controller) is None
    assert decision_doc(one)["decision"] == "continue" and decision_doc(two)["decision"] == "pause"


def test_euro_display(qtbot: QtBot, root: Path) -> None:
    ctrl = ConfirmationController(started_at=0.0)
    settings = Settings(threshold=1.0, currency="EUR", eur_per_usd=0.5)
    view = write_session(root, SID, 3.0)  # USD 3.00 = EUR 1.50
    ctrl.on_snapshot(snapshot(view), settings)
    assert shown(ctrl) is not None and dialog_of(ctrl).total.text() == "€1.50"
    ctrl.answer("continue")
    doc = decision_doc(view)
    assert doc["currency"] == "EUR" and doc["approvedUpTo"] == 2.0


# -- gate requests ----------------------------------------------------------------------------------


def test_a_request_shows_the_operation_and_continue_approves_it(
    controller: ConfirmationController, root: Path
) -> None:
    view = write_session(root, SID, 0.9)
    controller.on_snapshot(snapshot(view), USD)
    replies = Replies()
    controller.request(SID, root, 0.3, "build the container", replies)
    dialog = shown(controller)
    assert dialog is not None
    assert "asks to spend more" in dialog.title.text()
    assert "build the container: estimate $0.30" in dialog.operation.text()
    assert dialog.approves.text() == "Continue approves spending up to $2.00"
    assert replies.got == []
    controller.answer("continue")
    assert [v.answer for v in replies.got] == ["approved"]
    assert replies.got[0].approved_up_to == 2.0
    assert decision_doc(view)["approvedUpTo"] == 2.0


def test_the_step_approved_covers_the_estimate(controller: ConfirmationController, root: Path) -> None:
    view = write_session(root, SID, 1.5)
    replies = Replies()
    controller.request(SID, root, 0.8, "a big run", replies)  # 2.3 > 2.0: approves up to 3.0
    controller.answer("continue")
    assert replies.got[0].approved_up_to == 3.0
    assert decision_doc(view)["approvedUpTo"] == 3.0


def test_a_request_joins_the_open_dialog_of_its_session(
    controller: ConfirmationController, root: Path
) -> None:
    controller.on_snapshot(snapshot(write_session(root, SID, 1.2)), USD)
    dialog = shown(controller)
    first, second = Replies(), Replies()
    controller.request(SID, root, 0.1, "tests", first)
    controller.request(SID, root, 0.2, "scan", second)
    assert shown(controller) is dialog and len(visible_dialogs()) == 1
    assert dialog is not None and "tests" in dialog.operation.text() and "scan" in dialog.operation.text()
    controller.answer("pause")
    assert [v.answer for v in first.got + second.got] == ["denied", "denied"]


def test_a_request_for_an_approved_amount_is_answered_at_once(
    controller: ConfirmationController, root: Path
) -> None:
    view = write_session(root, SID, 1.2)
    decisions.write_decision(view.session_dir, Decision(SID, "continue", 2.0, decisions.now()))
    replies = Replies()
    controller.request(SID, root, 0.5, "tests", replies)
    assert [v.answer for v in replies.got] == ["approved"]
    assert shown(controller) is None


def test_a_request_with_a_reason_is_always_put_to_the_user(
    controller: ConfirmationController, root: Path
) -> None:
    view = write_session(root, SID, 1.2)
    decisions.write_decision(view.session_dir, Decision(SID, "continue", 2.0, decisions.now()))
    replies = Replies()
    controller.request(SID, root, 0.1, "tests", replies, reason="budget shop (month) would be exceeded")
    assert replies.got == []
    assert (
        "Also asked because budget shop (month) would be exceeded" in dialog_of(controller).operation.text()
    )


def test_a_paused_session_asks_even_under_the_threshold(
    controller: ConfirmationController, root: Path
) -> None:
    view = write_session(root, SID, 0.2)
    decisions.write_decision(view.session_dir, Decision(SID, "pause", 0.2, decisions.now()))
    replies = Replies()
    controller.request(SID, root, 0.1, "tests", replies)
    assert shown(controller) is not None and replies.got == []


def test_a_withdrawn_request_closes_its_dialog_without_deciding(
    controller: ConfirmationController, root: Path
) -> None:
    view = write_session(root, SID, 0.9)
    replies = Replies()
    request_id = controller.request(SID, root, 0.3, "tests", replies)
    assert shown(controller) is not None
    controller.cancel(request_id)
    assert shown(controller) is None
    assert replies.got == []
    assert not (view.session_dir / "cost.decision.json").exists()


def test_a_withdrawn_request_leaves_a_crossing_dialog_open(
    controller: ConfirmationController, root: Path
) -> None:
    controller.on_snapshot(snapshot(write_session(root, SID, 1.2)), USD)
    request_id = controller.request(SID, root, 0.3, "tests", Replies())
    controller.cancel(request_id)
    assert shown(controller) is not None
    assert not dialog_of(controller).operation.isVisibleTo(dialog_of(controller))


def test_a_request_for_a_session_not_watched_reads_its_file(
    controller: ConfirmationController, root: Path
) -> None:
    write_session(root, SID, 1.4)
    controller.request(SID, root, 0.1, "tests", Replies())
    assert shown(controller) is not None and dialog_of(controller).total.text() == "$1.40"


def test_refused_requests(controller: ConfirmationController, root: Path) -> None:
    bad = Replies()
    controller.request("../escape", root, 0.1, "x", bad)
    assert [v.answer for v in bad.got] == ["denied"]
    write_session(root, SID, 0.9)
    for _ in range(MAX_WAITING):
        controller.request(SID, root, 0.1, "x", Replies())
    late = Replies()
    controller.request(SID, root, 0.1, "x", late)
    assert [v.answer for v in late.got] == ["denied"]
    assert "too many" in late.got[0].message


def test_auto_answer_never_shows_a_dialog(qtbot: QtBot, root: Path) -> None:
    ctrl = ConfirmationController(auto_answer="pause", started_at=0.0)
    view = write_session(root, SID, 1.2)
    replies = Replies()
    with qtbot.waitSignal(ctrl.decided) as decided:
        ctrl.on_snapshot(snapshot(view), USD)
        ctrl.request(SID, root, 0.2, "tests", replies)
        assert shown(ctrl) is None and visible_dialogs() == []
    assert decided.args == [SID, "pause"]
    assert [v.answer for v in replies.got] == ["denied"]
    assert decision_doc(view)["decision"] == "pause"


def test_auto_answer_must_be_a_decision() -> None:
    with pytest.raises(ValueError):
        ConfirmationController(auto_answer="yes")


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="None, True and False are immortal from 3.12")
def test_qt_calls_do_not_use_up_none_or_true(controller: ConfirmationController, root: Path) -> None:
    # PySide6 6.12.0 dropped a reference to None on each void call and to True on each emit
    # (pinned out in pyproject; see tests/ui/test_qt_binding.py)
    before = [sys.getrefcount(v) for v in (None, True, False)]
    for _ in range(50):
        controller.on_snapshot(snapshot(write_session(root, SID, 1.2)), USD)
        controller.answer("pause")
    after = [sys.getrefcount(v) for v in (None, True, False)]
    assert all(a - b > -100 for a, b in zip(after, before, strict=True)), (before, after)


@pytest.mark.parametrize(
    "settings",
    [Settings(), Settings(currency="EUR", eur_per_usd=0.8), Settings(llm_enabled=False)],
)
def test_session_total_follows_the_summary_rules(example_root: Path, settings: Settings) -> None:
    from mity_cost.core.factory.layout import session_files
    from mity_cost.core.figures.summary import summarize
    from mity_cost.ui.confirmation import session_total

    files = session_files(example_root)
    assert files
    for found in files:
        loaded = load_session(found.path)
        assert isinstance(loaded, LoadedSession)
        assert session_total(loaded, settings) == summarize(loaded.figures, settings).total
