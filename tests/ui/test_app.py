"""The composition root: options, logging, the crash dialog, single instance, and the wiring.

The wiring is tested with fakes for the watcher, the details window and the confirmation controller
(their real classes have their own tests); ``main()`` itself runs in subprocesses.
"""

from __future__ import annotations

import logging
import os
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QApplication, QMessageBox
from pytestqt.qtbot import QtBot

import mity_cost.app as app_module
from mity_cost import __version__
from mity_cost.app import (
    CrashReporter,
    SingleInstance,
    TrayApp,
    instance_server_name,
    parse_args,
    setup_logging,
)
from mity_cost.core import paths
from mity_cost.core.gate.thresholds import Level, Severity
from mity_cost.core.live.snapshot import Snapshot
from mity_cost.core.settings import Settings, save_settings
from mity_cost.core.spending import alerts
from mity_cost.core.spending.alerts import Alert
from mity_cost.core.spending.budgets import Budget, add_budget
from mity_cost.core.spending.history import History, default_path
from mity_cost.ui.history_worker import HistoryWorker
from tests.ui.tray_helpers import APP, app_spent, root_snapshot, snapshot, view, with_app

REPO = Path(__file__).resolve().parents[2]
SID = "5b7e1c3a-9d2f-4e8b-a6c1-3f0d8e2b7a91"


# -- options --------------------------------------------------------------------------------------


def test_options() -> None:
    args = parse_args(["--root", "a", "--root", "b", "--demo", "--no-dialogs", "--quit-after", "1.5"])
    assert args.roots == [Path("a"), Path("b")]
    assert args.demo and args.no_dialogs and args.quit_after == 1.5
    plain = parse_args([])
    assert plain.roots is None and not plain.demo and plain.quit_after is None


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        parse_args(["--version"])
    assert exit_info.value.code == 0
    assert __version__ in capsys.readouterr().out


# -- logging and the crash dialog -----------------------------------------------------------------


@pytest.fixture
def app_logging() -> Iterator[Path | None]:
    root = logging.getLogger()
    level = root.level
    path = setup_logging()
    yield path
    for handler in list(root.handlers):
        if getattr(handler, app_module._HANDLER_TAG, False):
            root.removeHandler(handler)
            handler.close()
    root.setLevel(level)


def test_rotating_log_in_the_log_folder(app_logging: Path | None) -> None:
    assert app_logging == paths.log_dir() / "mity-cost.log"
    logging.getLogger("mity_cost.test").info("hello from the test")
    assert "hello from the test" in app_logging.read_text()
    ours = [h for h in logging.getLogger().handlers if getattr(h, app_module._HANDLER_TAG, False)]
    setup_logging()
    again = [h for h in logging.getLogger().handlers if getattr(h, app_module._HANDLER_TAG, False)]
    assert len(again) == len(ours)
    rotating = [h for h in again if isinstance(h, logging.handlers.RotatingFileHandler)]
    assert rotating and rotating[0].maxBytes == app_module.LOG_BYTES and rotating[0].backupCount >= 1


def test_unwritable_log_folder_is_not_fatal(isolated_home: Path) -> None:
    (isolated_home / "log").write_text("a file where the folder should be")
    root = logging.getLogger()
    try:
        assert setup_logging() is None
    finally:
        for handler in list(root.handlers):
            if getattr(handler, app_module._HANDLER_TAG, False):
                root.removeHandler(handler)


@pytest.fixture
def reporter(qtbot: QtBot, app_logging: Path | None) -> Iterator[CrashReporter]:
    crash = CrashReporter(app_logging)
    crash.install()
    yield crash
    crash.uninstall()
    if crash.dialog is not None:
        crash.dialog.close()


def _raise_and_report(crash: CrashReporter, message: str) -> None:
    try:
        raise ValueError(message)
    except ValueError:
        crash.excepthook(*sys.exc_info())


def test_uncaught_exception_is_logged_and_shown_without_blocking(
    qtbot: QtBot, reporter: CrashReporter, app_logging: Path | None
) -> None:
    assert sys.excepthook == reporter.excepthook
    _raise_and_report(reporter, "the badge fell over")
    qtbot.waitUntil(lambda: reporter.dialog is not None and reporter.dialog.isVisible())
    box = reporter.dialog
    assert isinstance(box, QMessageBox)
    assert not box.isModal()
    assert str(app_logging) in box.text()
    assert "ValueError: the badge fell over" in box.text()
    assert "Traceback" in box.detailedText()
    assert app_logging is not None
    logged = app_logging.read_text()
    assert "uncaught exception" in logged and "the badge fell over" in logged


def test_a_second_error_updates_the_one_dialog(qtbot: QtBot, reporter: CrashReporter) -> None:
    _raise_and_report(reporter, "first")
    qtbot.waitUntil(lambda: reporter.dialog is not None)
    first = reporter.dialog
    _raise_and_report(reporter, "second")
    qtbot.waitUntil(lambda: reporter.count == 2)
    assert reporter.dialog is first
    assert first is not None and "second" in first.text() and "2 errors" in first.text()
    boxes = [w for w in QApplication.topLevelWidgets() if isinstance(w, QMessageBox) and w.isVisible()]
    assert boxes == [first]
    first.close()
    qtbot.waitUntil(lambda: reporter.dialog is None)


def test_an_exception_in_a_thread_reaches_the_gui_thread(qtbot: QtBot, reporter: CrashReporter) -> None:
    def boom() -> None:
        raise RuntimeError("watcher thread died")

    thread = threading.Thread(target=boom, name="worker")
    thread.start()
    thread.join()
    qtbot.waitUntil(lambda: reporter.dialog is not None)
    assert reporter.dialog is not None and "watcher thread died" in reporter.dialog.text()


def test_no_dialogs_only_logs(qtbot: QtBot, app_logging: Path | None) -> None:
    crash = CrashReporter(app_logging, dialogs=False)
    _raise_and_report(crash, "quiet")
    qtbot.wait(20)
    assert crash.dialog is None
    assert app_logging is not None and "quiet" in app_logging.read_text()


# -- single instance ------------------------------------------------------------------------------


def test_first_instance_listens_user_only(qtbot: QtBot) -> None:
    first = SingleInstance()
    assert first.acquire(ack_ms=0)
    assert first.listening and first.error is None
    sock = Path(first.name)
    assert sock == paths.runtime_dir() / "instance.sock"
    assert stat.S_ISSOCK(os.stat(sock).st_mode)
    assert stat.S_IMODE(os.stat(sock).st_mode) & 0o077 == 0
    assert stat.S_IMODE(os.stat(sock.parent).st_mode) == 0o700
    first.close()
    assert not sock.exists()


def test_second_instance_asks_the_first_to_show_itself(qtbot: QtBot) -> None:
    first = SingleInstance()
    assert first.acquire(ack_ms=0)
    second = SingleInstance()
    with qtbot.waitSignal(first.activated) as blocker:
        assert second.acquire({"command": "show", "session": SID}, ack_ms=0) is False
    assert blocker.args[0] == {"command": "show", "session": SID}
    assert not second.listening
    first.close()


def test_a_stale_socket_from_a_crash_is_replaced(qtbot: QtBot) -> None:
    name = instance_server_name()
    Path(name).parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(name)  # bound, never listening, closed without unlinking: what a crash leaves
    dead.close()
    assert Path(name).exists()
    first = SingleInstance()
    assert first.acquire(ack_ms=0)
    assert first.listening
    first.close()


def test_an_unsafe_runtime_folder_runs_without_single_instance(qtbot: QtBot) -> None:
    folder = paths.runtime_dir()
    folder.mkdir(parents=True)
    folder.chmod(0o777)
    guard = SingleInstance()
    assert guard.acquire(ack_ms=0) is True
    assert not guard.listening and guard.error


def test_malformed_messages_are_ignored(qtbot: QtBot) -> None:
    first = SingleInstance()
    assert first.acquire(ack_ms=0)
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    client.connect(first.name)
    client.sendall(b"not json\n[1, 2]\n" + b'{"command": "show"}\n')
    client.close()
    with qtbot.waitSignal(first.activated) as blocker:
        pass
    assert blocker.args[0] == {"command": "show"}
    first.close()


# -- composition, with fakes -----------------------------------------------------------------------


class FakeBridge(QObject):
    snapshot_ready = Signal(object)

    def __init__(self, roots: list[Path], parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.roots = list(roots)
        self.started = 0
        self.stopped = 0
        self.set_roots_calls: list[list[Path]] = []

    def start(self) -> None:
        self.started += 1

    def stop(self) -> bool:
        self.stopped += 1
        return True

    def set_roots(self, roots: list[Path]) -> None:
        self.set_roots_calls.append(list(roots))


class FakeDetails:
    def __init__(self) -> None:
        self.applied: list[tuple[Snapshot, Settings]] = []
        self.shown: list[str | None] = []

    def apply(self, snapshot: Snapshot, settings: Settings) -> None:
        self.applied.append((snapshot, settings))

    def show_session(self, session_id: str | None = None) -> None:
        self.shown.append(session_id)


class FakeConfirmation:
    def __init__(self) -> None:
        self.seen: list[tuple[Snapshot, Settings]] = []

    def on_snapshot(self, snapshot: Snapshot, settings: Settings) -> None:
        self.seen.append((snapshot, settings))


class FakeGate:
    def __init__(self, handler: Any) -> None:
        self.handler = handler
        self.started = False
        self.stopped = False
        self.error = None

    def start(self) -> bool:
        self.started = True
        return True

    def stop(self) -> None:
        self.stopped = True


@pytest.fixture
def parts() -> dict[str, Any]:
    return {"details": [], "confirmation": FakeConfirmation(), "gate": []}


@pytest.fixture
def tray_app(qtbot: QtBot, parts: dict[str, Any], tmp_path: Path) -> Iterator[TrayApp]:
    def details() -> FakeDetails:
        made = FakeDetails()
        parts["details"].append(made)
        return made

    def gate(handler: Any, parent: QObject | None) -> FakeGate:
        made = FakeGate(handler)
        parts["gate"].append(made)
        return made

    app = TrayApp(
        [tmp_path],
        Settings(),
        bridge_factory=FakeBridge,
        details_factory=details,
        confirmation_factory=lambda parent, dialogs: parts["confirmation"],
        gate_factory=gate,
        tray_available=lambda: False,
    )
    yield app
    app.stop()


def test_start_shows_the_stand_in_and_starts_watching(tray_app: TrayApp, parts: dict[str, Any]) -> None:
    tray_app.start()
    assert isinstance(tray_app.bridge, FakeBridge) and tray_app.bridge.started == 1
    assert tray_app.tray.fallback is not None and tray_app.tray.fallback.isVisible()
    assert parts["gate"][0].started and parts["gate"][0].handler is parts["confirmation"]
    assert "No session yet" in tray_app.tray.state.headline


def test_a_snapshot_reaches_every_part(qtbot: QtBot, tray_app: TrayApp, parts: dict[str, Any]) -> None:
    tray_app.start()
    snap = snapshot(view(SID, 0.8))
    with qtbot.waitSignal(tray_app.notifications.notified) as warned:
        tray_app.bridge.snapshot_ready.emit(snap)
    assert tray_app.tray.state.level is Level.WARNING and tray_app.tray.state.text == "$0.80"
    assert parts["confirmation"].seen == [(snap, tray_app.settings)]
    assert warned.args[0].percent == 75
    fallback = tray_app.tray.fallback
    assert fallback is not None and fallback.notice.isVisible()  # the warning, in the stand-in window
    assert parts["details"] == []  # not built until opened


def test_details_open_lazily_with_the_latest_snapshot(tray_app: TrayApp, parts: dict[str, Any]) -> None:
    snap = snapshot(view(SID, 0.3))
    tray_app.on_snapshot(snap)
    tray_app.tray.open_details.emit(SID)
    (details,) = parts["details"]
    assert details.applied == [(snap, tray_app.settings)] and details.shown == [SID]
    tray_app.tray.details_action.trigger()
    assert details.shown == [SID, None] and len(parts["details"]) == 1
    later = snapshot(view(SID, 0.4))
    tray_app.on_snapshot(later)
    assert details.applied[-1][0] is later


def test_a_failing_part_does_not_stop_the_others(tray_app: TrayApp, parts: dict[str, Any]) -> None:
    def broken(snapshot: Snapshot, settings: Settings) -> None:
        raise RuntimeError("confirmation bug")

    parts["confirmation"].on_snapshot = broken
    tray_app.on_snapshot(snapshot(view(SID, 0.6)))
    assert tray_app.tray.state.text == "$0.60"


def test_second_start_activation_shows_details(tray_app: TrayApp, parts: dict[str, Any]) -> None:
    tray_app.activate({"command": "show", "session": SID})
    tray_app.activate("garbage")
    assert parts["details"][0].shown == [SID, None]


def test_edit_budgets_opens_the_budgets_tab(qtbot: QtBot, tray_app: TrayApp) -> None:
    tray_app.tray.open_budgets.emit()
    dialog = tray_app.settings_dialog
    assert dialog is not None and dialog.isVisible()
    assert dialog.tabs.currentWidget() is dialog.budgets
    dialog.reject()


def test_settings_dialog_is_single_and_non_modal(qtbot: QtBot, tray_app: TrayApp) -> None:
    tray_app.tray.open_settings.emit()
    dialog = tray_app.settings_dialog
    assert dialog is not None and dialog.isVisible() and not dialog.isModal()
    tray_app.show_settings()
    assert tray_app.settings_dialog is dialog
    dialog.reject()
    assert tray_app.settings_dialog is None


def test_saved_settings_apply_everywhere_and_switch_roots(
    tray_app: TrayApp, parts: dict[str, Any], tmp_path: Path
) -> None:
    snap = snapshot(view(SID, 0.3))
    tray_app.on_snapshot(snap)
    new_root = tmp_path / "other"
    tray_app.apply_settings(Settings(threshold=0.5, roots=(str(new_root),)))
    assert tray_app.tray.state.level is Level.NOTICE  # 0.30 of 0.50
    assert parts["confirmation"].seen[-1][1].threshold == 0.5
    bridge = tray_app.bridge
    assert isinstance(bridge, FakeBridge) and bridge.set_roots_calls == [[new_root]]
    assert tray_app.roots == [new_root]


def test_command_line_roots_win_over_saved_ones(qtbot: QtBot, tmp_path: Path) -> None:
    app = TrayApp(
        [tmp_path],
        Settings(),
        roots_from_command_line=True,
        bridge_factory=FakeBridge,
        details_factory=None,
        confirmation_factory=None,
        gate_factory=None,
        tray_available=lambda: False,
    )
    app.apply_settings(Settings(roots=(str(tmp_path / "elsewhere"),)))
    assert app.roots == [tmp_path]
    assert isinstance(app.bridge, FakeBridge) and app.bridge.set_roots_calls == []
    app.show_details("")  # no details window in this build: logged, nothing raised
    app.stop()


def test_quit_ends_the_loop_even_though_windows_refuse_to_close(
    tray_app: TrayApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    codes: list[int] = []
    monkeypatch.setattr(app_module, "request_exit", lambda code=0: codes.append(code))
    tray_app.tray.quit_action.trigger()
    assert codes == [0]


def test_stop_stops_watching_and_answering(tray_app: TrayApp, parts: dict[str, Any]) -> None:
    tray_app.start()
    tray_app.stop()
    assert isinstance(tray_app.bridge, FakeBridge) and tray_app.bridge.stopped == 1
    assert parts["gate"][0].stopped
    assert tray_app.tray.fallback is None


# -- main(), for real, in subprocesses ------------------------------------------------------------


def _env(home: Path) -> dict[str, str]:
    env = {**os.environ, "MITY_COST_HOME": str(home), "QT_QPA_PLATFORM": "offscreen"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH", "")]))
    return env


def _app(*args: str) -> list[str]:
    return [sys.executable, "-m", "mity_cost.app", *args]


@pytest.mark.slow
def test_main_starts_and_quits_cleanly(isolated_home: Path, example_root: Path) -> None:
    done = subprocess.run(
        _app("--root", str(example_root), "--quit-after", "1", "--no-dialogs"),
        env=_env(isolated_home),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    log_text = (isolated_home / "log" / "mity-cost.log").read_text()
    assert "single instance: listening" in log_text
    assert f"watching {example_root}" in log_text
    assert "event loop ended" in log_text
    assert "Traceback" not in log_text
    assert not (isolated_home / "run" / "instance.sock").exists()


@pytest.mark.slow
def test_main_second_start_hands_over_and_exits_0(isolated_home: Path, example_root: Path) -> None:
    save_settings(Settings(roots=(str(example_root),)))
    env = _env(isolated_home)
    log = isolated_home / "log" / "mity-cost.log"
    first = subprocess.Popen(_app("--quit-after", "30", "--no-dialogs"), env=env, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while "single instance: listening" not in (log.read_text() if log.exists() else ""):
            assert first.poll() is None and time.monotonic() < deadline, "the first instance did not start"
            time.sleep(0.05)
        second = subprocess.run(_app("--no-dialogs"), env=env, capture_output=True, text=True, timeout=30)
        assert second.returncode == 0, second.stderr
        while "single instance: show" not in log.read_text():
            assert time.monotonic() < deadline, "the first instance was not asked"
            time.sleep(0.05)
        assert "asked it to show its window" in log.read_text()
    finally:
        first.terminate()
        assert first.wait(timeout=30) == 0
        assert first.stderr is not None
        first.stderr.close()


# -- history, budgets and alerts --------------------------------------------------------------------


NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def _history_app(tmp_path: Path, **kwargs: Any) -> TrayApp:
    return TrayApp(
        [tmp_path],
        Settings(),
        bridge_factory=FakeBridge,
        details_factory=None,
        confirmation_factory=None,
        gate_factory=None,
        history_factory=lambda parent: HistoryWorker(parent, clock=lambda: NOW, retry_s=0.0),
        tray_available=lambda: False,
        **kwargs,
    )


@pytest.fixture
def history_app(qtbot: QtBot, tmp_path: Path) -> Iterator[TrayApp]:
    app = _history_app(tmp_path)
    yield app
    app.stop()


def _settle(qtbot: QtBot, app: TrayApp) -> None:
    worker = app.history
    assert isinstance(worker, HistoryWorker)
    qtbot.waitUntil(worker.idle, timeout=20_000)


def test_every_snapshot_reaches_the_history_worker(
    qtbot: QtBot, history_app: TrayApp, example_root: Path
) -> None:
    history_app.start()
    _settle(qtbot, history_app)
    worker = history_app.history
    assert isinstance(worker, HistoryWorker)
    with qtbot.waitSignal(worker.updated, timeout=20_000):
        history_app.bridge.snapshot_ready.emit(root_snapshot(example_root))
    _settle(qtbot, history_app)
    assert history_app.history_update is not None and history_app.history_update.added > 0
    assert history_app.history_update.evaluated


def test_the_app_budget_at_75_percent_notifies_once(
    qtbot: QtBot, history_app: TrayApp, example_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """End to end: a copy of the example root whose big session belongs to an app, a monthly budget
    for that app at 80 % of what the history holds for it: one 75 % budget warning, whatever else."""
    snap = root_snapshot(with_app(example_root))
    spent = app_spent(snap, tmp_path, NOW)
    add_budget(Budget("app", APP, "month", round(spent / 0.8, 2)))
    shown: list[tuple[str, str, Severity, str | None]] = []
    monkeypatch.setattr(
        history_app.tray,
        "show_message",
        lambda title, text, severity, sid=None: shown.append((title, text, severity, sid)),
    )
    notified: list[tuple[Alert, ...]] = []
    history_app.notifications.alerts_notified.connect(notified.append)
    history_app.start()
    for _ in range(3):  # the watcher reports the same state again: nothing new to say
        history_app.bridge.snapshot_ready.emit(snap)
        _settle(qtbot, history_app)
    worker = history_app.history
    assert isinstance(worker, HistoryWorker)
    worker.refresh()
    _settle(qtbot, history_app)
    budget_warnings = [a for batch in notified for a in batch if a.kind == "budget_warning"]
    assert len(budget_warnings) == 1
    (warning,) = budget_warnings
    assert warning.level == 75 and warning.data["budgetId"] == f"app:{APP}:month"
    assert warning.data["spent"] == pytest.approx(spent)
    budget_shown = [s for s in shown if warning.message in s[1]]
    assert len(budget_shown) == 1 and budget_shown[0][2] is Severity.WARNING
    assert warning.id in [a.id for a in history_app.tray.alerts]
    assert "budget alert" in history_app.tray.state.tooltip


def test_paused_alerts_are_not_shown(
    qtbot: QtBot, history_app: TrayApp, example_root: Path, tmp_path: Path
) -> None:
    snap = root_snapshot(with_app(example_root))
    add_budget(Budget("app", APP, "month", round(app_spent(snap, tmp_path, NOW) / 0.8, 2)))
    history_app.tray.set_paused(True)
    history_app.start()
    with qtbot.waitSignal(history_app.notifications.alerts_suppressed, timeout=20_000) as blocker:
        history_app.bridge.snapshot_ready.emit(snap)
    assert any(a.kind == "budget_warning" for a in blocker.args[0])
    _settle(qtbot, history_app)
    history_app.tray.set_paused(False)
    with qtbot.assertNotEmitted(history_app.notifications.alerts_notified, wait=100):
        history_app.bridge.snapshot_ready.emit(snap)
        _settle(qtbot, history_app)


def test_dismissing_from_the_tray_resolves_in_the_history(qtbot: QtBot, history_app: TrayApp) -> None:
    with History() as history:
        raised = alerts.raise_alert(history, "budget_exceeded", "overall:*:day", 100, "2026-11-23", "over")
    assert raised is not None
    history_app.start()
    _settle(qtbot, history_app)
    assert [a.id for a in history_app.tray.alerts] == [raised.id]
    history_app.tray.dismiss((raised.id,))
    _settle(qtbot, history_app)
    assert history_app.tray.alerts == ()
    with History() as history:
        assert alerts.list_alerts(history, unresolved=True) == []


def test_a_broken_history_shows_in_the_tooltip_and_the_app_runs_on(
    qtbot: QtBot, history_app: TrayApp
) -> None:
    path = default_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"definitely not sqlite " * 64)
    history_app.start()
    history_app.bridge.snapshot_ready.emit(snapshot(view(SID, 0.3)))
    _settle(qtbot, history_app)
    state = history_app.tray.state
    assert state.text == "$0.30"
    assert "spending history cannot be used" in state.tooltip


def test_budget_edits_in_the_settings_dialog_refresh_the_history(
    qtbot: QtBot, history_app: TrayApp, example_root: Path
) -> None:
    history_app.start()
    history_app.on_snapshot(root_snapshot(example_root))
    _settle(qtbot, history_app)
    history_app.show_settings()
    dialog = history_app.settings_dialog
    assert dialog is not None
    assert "shop-api" in [dialog.budgets.target.itemText(i) for i in range(dialog.budgets.target.count())]
    worker = history_app.history
    assert isinstance(worker, HistoryWorker)
    dialog.budgets.target.setEditText("shop-api")
    with qtbot.waitSignal(worker.updated, timeout=20_000):
        assert dialog.budgets.add()
    _settle(qtbot, history_app)
    update = history_app.history_update
    assert update is not None and [s.budget.target for s in update.statuses] == ["shop-api"]
    dialog.reject()
