"""The tray app's composition root: ``mity-cost-tray`` (and ``mity-cost tray``) start here.

``main()`` parses the options, sets up the rotating log and the last-resort error dialog, makes sure
only one instance runs (a second start asks the first to show its details window, then exits 0), and
wires the parts together: the watcher's bridge feeds every snapshot to the tray badge, the warnings,
the confirmation controller, the history worker (spending history, budgets and alerts, off the GUI
thread) and (once opened) the details window; the history worker's alerts become notifications and
the tray menu's "Alerts"; the gate server answers ``mity-cost gate`` through the confirmation
controller.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import logging
import logging.handlers
import os
import signal
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

from PySide6.QtCore import QEvent, QObject, QSocketNotifier, Qt, QTimer, QUrl, Signal, Slot
from PySide6.QtGui import QDesktopServices
from PySide6.QtNetwork import QLocalServer, QLocalSocket
from PySide6.QtWidgets import QApplication, QMessageBox

from mity_cost import __version__
from mity_cost.core import paths
from mity_cost.core.live.snapshot import Snapshot
from mity_cost.core.settings import Settings, load_saved, load_settings
from mity_cost.ui.budgets_editor import budget_suggestions
from mity_cost.ui.history_worker import HistoryUpdate, HistoryWorker
from mity_cost.ui.notifications import NotificationController
from mity_cost.ui.settings_dialog import SettingsDialog
from mity_cost.ui.tray import TrayController

log = logging.getLogger("mity_cost.app")

LOG_FILE = "mity-cost.log"
LOG_BYTES = 1_000_000
LOG_BACKUPS = 3
INSTANCE_SOCKET = "instance.sock"
MAX_INSTANCE_MESSAGE = 64 * 1024
_HANDLER_TAG = "_mity_cost_handler"


# -- command line ---------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """The tray's options."""
    parser = argparse.ArgumentParser(
        prog="mity-cost-tray",
        description="The mity-cost tray app: a live cost badge, details, warnings and the confirmation.",
    )
    parser.add_argument("--version", action="version", version=f"mity-cost {__version__}")
    parser.add_argument(
        "--root",
        dest="roots",
        action="append",
        type=Path,
        metavar="DIR",
        help="factory root to watch (repeatable; default: the settings' roots, else the current folder)",
    )
    parser.add_argument(
        "--demo",
        action="store_true",
        help="watch a copy of the example workspace while a simulated factory spends",
    )
    parser.add_argument(
        "--no-dialogs",
        action="store_true",
        help="never show a dialog: errors are only logged, confirmations are answered 'pause' (tests)",
    )
    parser.add_argument(
        "--quit-after",
        type=float,
        default=None,
        metavar="SECONDS",
        help="quit after this many seconds (smoke tests)",
    )
    parser.add_argument("--verbose", action="store_true", help="log debug messages")
    return parser


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the tray's command line (``--version`` and ``--help`` exit)."""
    return build_parser().parse_args(argv)


# -- logging and crash reports --------------------------------------------------------------------


def log_file() -> Path:
    """The rotating log's path (in ``core.paths.log_dir()``)."""
    return paths.log_dir() / LOG_FILE


def setup_logging(verbose: bool = False) -> Path | None:
    """Log to a rotating file (and to stderr when there is one); returns the file, or None if unusable.

    Calling it again replaces the handlers it added before.
    """
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, _HANDLER_TAG, False):
            root.removeHandler(handler)
            handler.close()
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    path: Path | None = log_file()
    try:
        assert path is not None
        path.parent.mkdir(parents=True, exist_ok=True)
        file_handler: logging.Handler = logging.handlers.RotatingFileHandler(
            path, maxBytes=LOG_BYTES, backupCount=LOG_BACKUPS, encoding="utf-8"
        )
        file_handler.setFormatter(fmt)
        setattr(file_handler, _HANDLER_TAG, True)
        root.addHandler(file_handler)
    except OSError:
        path = None
    if sys.stderr is not None:
        stream = logging.StreamHandler(sys.stderr)
        stream.setLevel(logging.DEBUG if verbose else logging.WARNING)
        stream.setFormatter(fmt)
        setattr(stream, _HANDLER_TAG, True)
        root.addHandler(stream)
    if path is None:
        log.warning("no log file: %s is not writable", log_file().parent)
    return path


def _install_qt_message_handler() -> None:
    from PySide6.QtCore import QMessageLogContext, QtMsgType, qInstallMessageHandler

    qt_log = logging.getLogger("qt")
    levels = {
        QtMsgType.QtDebugMsg: logging.DEBUG,
        QtMsgType.QtInfoMsg: logging.INFO,
        QtMsgType.QtWarningMsg: logging.WARNING,
        QtMsgType.QtCriticalMsg: logging.ERROR,
        QtMsgType.QtFatalMsg: logging.CRITICAL,
    }

    def handler(kind: QtMsgType, context: QMessageLogContext, message: str) -> None:
        qt_log.log(levels.get(kind, logging.WARNING), "%s", message)

    qInstallMessageHandler(handler)


def request_exit(code: int = 0) -> None:
    """End the event loop.

    ``QApplication.exit``, not ``quit``: since Qt 6 ``quit()`` first asks every window to close and
    gives up when one refuses, and ours refuse (closing a window hides it; it never quits the app).
    """
    app = QApplication.instance()
    if app is not None:
        app.exit(code)


ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]


class CrashReporter(QObject):
    """``sys.excepthook`` (and ``threading.excepthook``): log the error, show a non-blocking dialog.

    The dialog names the log file; there is at most one on screen (later errors update its count).
    From another thread the dialog is posted to the GUI thread through a queued signal.
    """

    _post = Signal(str, str)

    def __init__(self, log_path: Path | None, dialogs: bool = True, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.log_path = log_path
        self.dialogs = dialogs
        self.dialog: QMessageBox | None = None
        self.count = 0
        self._previous: tuple[Any, Any] | None = None
        self._post.connect(self.show_dialog, Qt.ConnectionType.QueuedConnection)

    def install(self) -> None:
        """Become ``sys.excepthook`` and ``threading.excepthook``."""
        self._previous = (sys.excepthook, threading.excepthook)
        sys.excepthook = self.excepthook
        threading.excepthook = self.thread_excepthook

    def uninstall(self) -> None:
        """Put the previous hooks back."""
        if self._previous is not None:
            sys.excepthook, threading.excepthook = self._previous
            self._previous = None

    def excepthook(self, exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
        """Log an uncaught exception and tell the user where the log is."""
        if issubclass(exc_type, KeyboardInterrupt):
            request_exit()
            return
        self.report((exc_type, exc, tb), "main thread")

    def thread_excepthook(self, args: threading.ExceptHookArgs) -> None:
        """The same for an exception that ended a thread."""
        if args.exc_value is None:
            return
        where = f"thread {args.thread.name}" if args.thread is not None else "a thread"
        self.report((args.exc_type, args.exc_value, args.exc_traceback), where)

    def report(self, info: ExcInfo, where: str) -> None:
        """Log the error; post the dialog (unless dialogs are off)."""
        log.critical("uncaught exception in %s", where, exc_info=info)
        if not self.dialogs:
            return
        summary = "".join(traceback.format_exception_only(info[0], info[1])).strip()
        details = "".join(traceback.format_exception(*info))
        self._post.emit(summary, details)

    @Slot(str, str)
    def show_dialog(self, summary: str, details: str) -> None:
        """Show (or update) the error dialog; never blocks."""
        self.count += 1
        where = str(self.log_path) if self.log_path else "(no log file could be written)"
        text = (
            "mity-cost hit an unexpected error and kept running.\n\n"
            f"{summary}\n\nThe full report is in the log:\n{where}"
        )
        if self.count > 1:
            text += f"\n\n({self.count} errors so far.)"
        if self.dialog is not None:
            self.dialog.setText(text)
            self.dialog.setDetailedText(details)
            self.dialog.show()
            self.dialog.raise_()
            return
        box = QMessageBox(QMessageBox.Icon.Critical, "mity-cost: unexpected error", text)
        box.setObjectName("mityCostCrashDialog")
        box.setDetailedText(details)
        box.setWindowModality(Qt.WindowModality.NonModal)
        box.setModal(False)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose, True)
        box.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        box.addButton(QMessageBox.StandardButton.Close)
        if self.log_path is not None:
            folder = box.addButton("Open log folder", QMessageBox.ButtonRole.ActionRole)
            with contextlib.suppress(RuntimeError, TypeError):
                folder.clicked.disconnect()  # keep the box open when it is clicked
            log_dir = self.log_path.parent
            folder.clicked.connect(lambda: QDesktopServices.openUrl(QUrl.fromLocalFile(str(log_dir))))
        box.finished.connect(self._closed)
        self.dialog = box
        box.show()

    @Slot()
    def _closed(self) -> None:
        self.dialog = None
        self.count = 0


# -- single instance ------------------------------------------------------------------------------


def instance_server_name(folder: Path | None = None) -> str:
    """Where the first instance listens: a socket in the runtime folder (a named pipe on Windows)."""
    if os.name == "nt":  # pragma: no cover - Windows
        return f"mity-cost-instance-{os.environ.get('USERNAME', 'user')}"
    return str((folder or paths.runtime_dir()) / INSTANCE_SOCKET)


def ask_running_instance(
    name: str, request: dict[str, Any], timeout_ms: int = 1000, ack_ms: int = 2000
) -> bool:
    """Send ``request`` to the instance listening on ``name``; True when one took it."""
    sock = QLocalSocket()
    sock.connectToServer(name)
    if not sock.waitForConnected(timeout_ms):
        return False
    sock.write((json.dumps(request) + "\n").encode("utf-8"))
    sock.flush()
    sock.waitForBytesWritten(timeout_ms)
    if ack_ms > 0 and sock.waitForReadyRead(ack_ms):
        log.info(
            "the running instance answered: %s",
            bytes(sock.readLine().data()).decode("utf-8", "replace").strip(),
        )
    sock.disconnectFromServer()
    return True


class SingleInstance(QObject):
    """Makes this process the only tray app of this user, or hands over to the one running.

    ``acquire()`` either listens (we are first; a socket left by a crash is removed after a failed
    probe-connect) or delivers the request to the running instance.  The first instance emits
    ``activated`` with each request it receives.  The socket's folder is the user's 0700 runtime
    folder, and the socket itself is user-only.
    """

    activated = Signal(object)

    def __init__(self, name: str | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._name = name
        self.server = QLocalServer(self)
        self.server.setSocketOptions(QLocalServer.SocketOption.UserAccessOption)
        self.server.newConnection.connect(self._on_connection)
        self._buffers: dict[QLocalSocket, bytearray] = {}
        self.error: str | None = None

    @property
    def name(self) -> str:
        """The server name (a socket path on POSIX)."""
        return self._name or instance_server_name()

    @property
    def listening(self) -> bool:
        """True when we are the first instance."""
        return self.server.isListening()

    def acquire(self, request: dict[str, Any] | None = None, ack_ms: int = 2000) -> bool:
        """True when we are the first instance (now listening), False when another one took ``request``.

        If the folder cannot be trusted or listening fails, the app runs anyway (True, and ``error``
        says why): a second instance is a lesser evil than no app.
        """
        from mity_cost.core.atomic import locked
        from mity_cost.core.gate import protocol

        name = self.name
        path = Path(name)
        if os.name != "nt":
            try:
                protocol.ensure_runtime_dir(path.parent)
            except protocol.GateError as exc:
                self.error = str(exc)
                log.warning("single instance: %s; running without it", exc)
                return True
        with locked(path) if os.name != "nt" else contextlib.nullcontext():
            if ask_running_instance(name, request or {"command": "show"}, ack_ms=ack_ms):
                log.info("another mity-cost is running; asked it to show its window")
                return False
            if os.name != "nt" and path.exists():
                log.info("removing a socket left by a previous run: %s", path)
            QLocalServer.removeServer(name)
            if not self.server.listen(name):
                self.error = f"cannot listen on {name}: {self.server.errorString()}"
                log.warning("single instance: %s; running without it", self.error)
                return True
        log.info("single instance: listening on %s", name)
        return True

    def close(self) -> None:
        """Stop listening (the socket file is removed)."""
        if self.server.isListening():
            self.server.close()

    @Slot()
    def _on_connection(self) -> None:
        while self.server.hasPendingConnections():
            sock = self.server.nextPendingConnection()
            self._buffers[sock] = bytearray()
            sock.readyRead.connect(self._on_ready_read)
            sock.disconnected.connect(self._on_disconnected)
            if sock.bytesAvailable() > 0:
                self._read(sock)

    @Slot()
    def _on_ready_read(self) -> None:
        sock = self.sender()
        if isinstance(sock, QLocalSocket):
            self._read(sock)

    def _read(self, sock: QLocalSocket) -> None:
        buffer = self._buffers.get(sock)
        if buffer is None:
            return
        buffer.extend(bytes(sock.readAll().data()))
        if len(buffer) > MAX_INSTANCE_MESSAGE:
            log.warning("single instance: oversized message dropped")
            self._drop(sock)
            return
        while b"\n" in buffer:
            line, _, rest = bytes(buffer).partition(b"\n")
            buffer[:] = rest
            try:
                request = json.loads(line)
            except ValueError:
                request = None
            if not isinstance(request, dict):
                log.warning("single instance: ignoring a malformed message")
                continue
            log.info("single instance: %s", request.get("command", "?"))
            if sock.state() == QLocalSocket.LocalSocketState.ConnectedState:
                sock.write(b'{"ok": true}\n')
                sock.flush()
            self.activated.emit(request)

    @Slot()
    def _on_disconnected(self) -> None:
        sock = self.sender()
        if isinstance(sock, QLocalSocket):
            if sock.bytesAvailable() > 0:
                self._read(sock)
            self._drop(sock)

    def _drop(self, sock: QLocalSocket) -> None:
        self._buffers.pop(sock, None)
        sock.abort()
        sock.deleteLater()


# -- composition ----------------------------------------------------------------------------------


class BridgeLike(Protocol):
    """What the app needs from ``ui.bridge.WatchBridge``."""

    @property
    def snapshot_ready(self) -> Any:  # a Signal(object)
        """Emits a ``Snapshot``."""

    def start(self) -> None:
        """Begin watching."""

    def stop(self) -> Any:
        """Stop watching."""


class DetailsLike(Protocol):
    """What the app needs from ``ui.details.DetailsWindow``."""

    def apply(self, snapshot: Snapshot, settings: Settings) -> None:
        """Show a snapshot."""

    def show_session(self, session_id: str | None = None) -> None:
        """Show and raise the window on a session."""


class ConfirmationLike(Protocol):
    """What the app needs from ``ui.confirmation.ConfirmationController``."""

    def on_snapshot(self, snapshot: Snapshot, settings: Settings) -> None:
        """Look at a snapshot."""


class HistoryLike(Protocol):
    """What the app needs from ``ui.history_worker.HistoryWorker``."""

    @property
    def updated(self) -> Any:  # a Signal(object)
        """Emits a ``HistoryUpdate``."""

    def start(self) -> None:
        """Open the history and refresh periodically."""

    def submit(self, snapshot: Snapshot, settings: Settings) -> None:
        """Take a snapshot in (coalesced)."""

    def refresh(self) -> None:
        """Run a pass again on the latest snapshot."""

    def dismiss(self, alert_ids: Sequence[int]) -> None:
        """Resolve alerts."""

    def stop(self, wait: bool = True) -> None:
        """Stop (the history is closed)."""


def default_history(parent: QObject | None) -> HistoryLike:
    """The real history worker (the default history and budgets files)."""
    return HistoryWorker(parent)


def default_bridge(roots: list[Path], parent: QObject | None) -> BridgeLike:
    """The real watcher bridge."""
    from mity_cost.ui.bridge import WatchBridge

    return WatchBridge(roots, parent)


def default_details() -> DetailsLike:
    """The real details window (pyqtgraph is imported here, the first time it is opened)."""
    from mity_cost.ui.details import DetailsWindow

    return DetailsWindow()


def default_confirmation(parent: QObject | None, dialogs: bool) -> ConfirmationLike:
    """The real confirmation controller (``--no-dialogs``: every question is answered "pause")."""
    from mity_cost.ui.confirmation import ConfirmationController

    return ConfirmationController(parent, auto_answer=None if dialogs else "pause")


def default_gate(handler: ConfirmationLike, parent: QObject | None) -> Any:
    """The gate server answering ``mity-cost gate`` through the confirmation controller."""
    from mity_cost.ui.gate_server import GateServer

    return GateServer(handler, parent=parent)  # type: ignore[arg-type]


class TrayApp(QObject):
    """Everything the tray app is made of, wired together.

    Collaborators come from factories so tests can give fakes: ``bridge_factory(roots, parent)``,
    ``details_factory()``, ``confirmation_factory(parent, dialogs)``, ``gate_factory(handler, parent)``,
    ``history_factory(parent)`` (``None`` leaves a part out).
    """

    def __init__(
        self,
        roots: Sequence[Path],
        settings: Settings | None = None,
        *,
        roots_from_command_line: bool = False,
        dialogs: bool = True,
        bridge_factory: Callable[[list[Path], QObject | None], BridgeLike] = default_bridge,
        details_factory: Callable[[], DetailsLike] | None = default_details,
        confirmation_factory: Callable[[QObject | None, bool], ConfirmationLike]
        | None = default_confirmation,
        gate_factory: Callable[[ConfirmationLike, QObject | None], Any] | None = default_gate,
        history_factory: Callable[[QObject | None], HistoryLike] | None = default_history,
        tray_available: Callable[[], bool] | None = None,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.settings = settings or load_settings()
        self.roots = [Path(r) for r in roots]
        self.roots_from_command_line = roots_from_command_line
        self.dialogs = dialogs
        self.snapshot: Snapshot | None = None
        self._bridge_factory = bridge_factory
        self._details_factory = details_factory
        self.details: DetailsLike | None = None
        self.settings_dialog: SettingsDialog | None = None

        self.tray = TrayController(self, tray_available=tray_available)
        self.notifications = NotificationController(self.tray, self)
        self.tray.pause_changed.connect(self.notifications.set_paused)
        self.tray.open_details.connect(self.show_details)
        self.tray.open_settings.connect(self.show_settings)
        self.tray.open_budgets.connect(self.show_budgets)
        self.tray.quit_requested.connect(self.quit)
        self.confirmation = (
            self._optional("confirmation", lambda: confirmation_factory(self, dialogs))
            if (confirmation_factory is not None)
            else None
        )
        self.gate: Any = None
        if gate_factory is not None and self.confirmation is not None:
            confirmation = self.confirmation
            self.gate = self._optional("gate server", lambda: gate_factory(confirmation, self))
        self.history_update: HistoryUpdate | None = None
        self.history: HistoryLike | None = None
        if history_factory is not None:
            self.history = history_factory(self)
            self.history.updated.connect(self.on_history)
            self.tray.dismiss_alerts.connect(self.history.dismiss)
        self.bridge = bridge_factory(self.roots, self)
        self.bridge.snapshot_ready.connect(self.on_snapshot)

    @staticmethod
    def _optional(what: str, make: Callable[[], Any]) -> Any:
        try:
            return make()
        except ImportError as exc:
            log.error("%s unavailable (%s); running without it", what, exc)
            return None

    def start(self) -> None:
        """Show the tray (or its stand-in) and start watching and answering."""
        self.tray.apply(Snapshot(roots=tuple(self.roots)), self.settings)
        self.tray.start()
        if self.gate is not None and not self.gate.start():
            log.warning("the confirmation socket is not available: %s", getattr(self.gate, "error", "?"))
        if self.history is not None:
            self.history.start()
        self.bridge.start()
        log.info("watching %s", ", ".join(str(r) for r in self.roots))

    def stop(self) -> None:
        """Stop watching and answering (before quitting)."""
        with contextlib.suppress(Exception):
            self.bridge.stop()
        if self.gate is not None:
            with contextlib.suppress(Exception):
                self.gate.stop()
        if self.history is not None:
            with contextlib.suppress(Exception):
                self.history.stop()
        self.tray.shutdown()
        details = self.details
        self.details = None
        for name in ("hide", "deleteLater"):
            method = getattr(details, name, None)
            if callable(method):
                with contextlib.suppress(Exception):
                    method()
        if self.settings_dialog is not None:
            self.settings_dialog.close()
            self.settings_dialog = None

    def _each(self, what: str, call: Callable[[], object]) -> None:
        """Run one consumer; a failure is logged and never stops the others."""
        try:
            call()
        except Exception:
            log.exception("%s failed on a snapshot", what)

    @Slot(object)
    def on_snapshot(self, snapshot: Snapshot) -> None:
        """Hand a new snapshot to every part that shows it."""
        self.snapshot = snapshot
        self._dispatch()

    def _dispatch(self) -> None:
        snapshot = self.snapshot
        if snapshot is None:
            return
        settings = self.settings
        self._each("tray", lambda: self.tray.apply(snapshot, settings))
        self._each("notifications", lambda: self.notifications.on_snapshot(snapshot, settings))
        confirmation = self.confirmation
        if confirmation is not None:
            self._each("confirmation", lambda: confirmation.on_snapshot(snapshot, settings))
        history = self.history
        if history is not None:
            self._each("history", lambda: history.submit(snapshot, settings))
        details = self.details
        if details is not None:
            self._each("details window", lambda: details.apply(snapshot, settings))

    @Slot(object)
    def on_history(self, update: HistoryUpdate) -> None:
        """A history pass ended: notify its new alerts, list the unresolved ones, show its problems."""
        self.history_update = update
        for problem in update.problems:
            log.debug("history: %s", problem)
        self._each(
            "alert notifications", lambda: self.notifications.on_alerts(update.to_notify, self.settings)
        )
        self._each(
            "tray alerts",
            lambda: self.tray.set_history(update.unresolved, update.unresolved_count, update.problems),
        )

    @Slot()
    def budgets_changed(self) -> None:
        """The budgets were edited: evaluate them again (and the details window's panel)."""
        if self.history is not None:
            self.history.refresh()
        refresh = getattr(self.details, "refresh_insights", None)
        if callable(refresh):
            self._each("details window", refresh)

    @Slot(str)
    def show_details(self, session_id: str = "") -> None:
        """Open the details window (created the first time) on a session ("" follows the active one)."""
        if self.details is None:
            if self._details_factory is None:
                log.warning("no details window in this build")
                return
            try:
                self.details = self._details_factory()
            except Exception:
                log.exception("could not open the details window")
                return
            if self.snapshot is not None:
                self.details.apply(self.snapshot, self.settings)
        self.details.show_session(session_id or None)

    @Slot()
    def show_budgets(self) -> None:
        """Open the settings dialog on its Budgets tab."""
        self.show_settings()
        if self.settings_dialog is not None:
            self.settings_dialog.show_tab("budgets")

    @Slot()
    def show_settings(self) -> None:
        """Open the settings dialog (non-modal; raised if already open)."""
        if self.settings_dialog is not None:
            self.settings_dialog.show()
            self.settings_dialog.raise_()
            self.settings_dialog.activateWindow()
            return
        saved, _problems = load_saved()
        dialog = SettingsDialog(
            self.settings,
            saved,
            roots_from_command_line=self.roots_from_command_line,
            suggestions=budget_suggestions(self.snapshot),
        )
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose, True)
        dialog.settings_saved.connect(self.apply_settings)
        dialog.budgets_changed.connect(self.budgets_changed)
        dialog.finished.connect(self._settings_closed)
        self.settings_dialog = dialog
        dialog.show()

    @Slot()
    def _settings_closed(self) -> None:
        self.settings_dialog = None

    @Slot(object)
    def apply_settings(self, settings: Settings) -> None:
        """Use new settings everywhere; switch roots when the saved ones changed (unless --root was given)."""
        self.settings = settings
        if not self.roots_from_command_line:
            roots = [Path(r) for r in settings.roots] or [Path.cwd()]
            if [r.resolve() for r in roots] != [r.resolve() for r in self.roots]:
                self.switch_roots(roots)
        self._dispatch()

    def switch_roots(self, roots: Sequence[Path]) -> None:
        """Watch other roots: a new bridge, and the warnings take a new baseline."""
        log.info("switching roots to %s", ", ".join(str(r) for r in roots))
        self.roots = [Path(r) for r in roots]
        self.notifications.rebaseline()
        setter = getattr(self.bridge, "set_roots", None)
        if callable(setter):
            setter(self.roots)
            return
        with contextlib.suppress(Exception):
            self.bridge.stop()
        self.bridge = self._bridge_factory(self.roots, self)
        self.bridge.snapshot_ready.connect(self.on_snapshot)
        self.bridge.start()

    @Slot(object)
    def activate(self, request: object) -> None:
        """Another start asked us to come forward: show the details window (and the stand-in window)."""
        self.tray.bring_forward()
        sid = request.get("session", "") if isinstance(request, dict) else ""
        self.show_details(sid if isinstance(sid, str) else "")

    @Slot()
    def quit(self) -> None:
        """Quit the app."""
        log.info("quit requested")
        request_exit()


# -- signals ----------------------------------------------------------------------------------------


class SignalWaker(QObject):
    """Quit cleanly on SIGINT/SIGTERM without a polling timer (a wake-up fd read by Qt's loop)."""

    def __init__(self, on_signal: Callable[[int], None], parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._on_signal = on_signal
        self._reader, self._writer = socket.socketpair()
        self._reader.setblocking(False)
        self._writer.setblocking(False)
        self._previous_fd = signal.set_wakeup_fd(self._writer.fileno())
        self._notifier = QSocketNotifier(self._reader.fileno(), QSocketNotifier.Type.Read, self)
        self._notifier.activated.connect(self._drain)
        self._handlers = {sig: signal.signal(sig, lambda *_: None) for sig in (signal.SIGINT, signal.SIGTERM)}

    @Slot()
    def _drain(self) -> None:
        with contextlib.suppress(OSError):
            data = self._reader.recv(64)
            for signum in data:
                log.info("signal %d received", signum)
                self._on_signal(signum)

    def close(self) -> None:
        """Restore the previous signal handling."""
        for sig, handler in self._handlers.items():
            with contextlib.suppress(ValueError, TypeError):
                signal.signal(sig, handler)
        signal.set_wakeup_fd(self._previous_fd)
        self._notifier.setEnabled(False)
        self._reader.close()
        self._writer.close()


# -- main -------------------------------------------------------------------------------------------


def _application(argv: Sequence[str]) -> QApplication:
    existing = QApplication.instance()
    app = (
        existing
        if isinstance(existing, QApplication)
        else QApplication(["mity-cost", *argv])  # argv[0] names the X11 WM_CLASS
    )
    app.setApplicationName("mity-cost")
    app.setApplicationDisplayName("mity-cost")
    app.setApplicationVersion(__version__)
    app.setOrganizationName("mity-cost")
    app.setDesktopFileName("mity-cost")
    app.setQuitOnLastWindowClosed(False)
    return app


def main(argv: Sequence[str] | None = None) -> int:
    """Run the tray app; returns the exit code (0 also when another instance was asked to show itself)."""
    if sys.stdout is None:  # gui-scripts on Windows: no console
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115
    args = parse_args(argv)
    log_path = setup_logging(args.verbose)
    log.info("mity-cost %s starting (Python %s)", __version__, sys.version.split()[0])
    app = _application([])
    _install_qt_message_handler()
    log.info("Qt platform: %s", app.platformName())
    crash = CrashReporter(log_path, dialogs=not args.no_dialogs)
    crash.install()
    instance = SingleInstance()
    request = {"command": "show", "roots": [str(r) for r in args.roots or []], "pid": os.getpid()}
    if not instance.acquire(request):
        crash.uninstall()
        return 0
    demo = None
    try:
        settings = load_settings()
        for problem in settings.problems:
            log.warning("settings: %s", problem)
        roots: list[Path] = [Path(r).expanduser() for r in args.roots or []]
        from_cli = bool(roots)
        if args.demo:
            from mity_cost.demo import start_demo

            demo = start_demo()
            log.info("demo: a simulated factory writes under %s", demo.root)
            roots = [demo.root, *roots]
            from_cli = True
        if not roots:
            roots = [Path(r).expanduser() for r in settings.roots] or [Path.cwd()]
        tray_app = TrayApp(roots, settings, roots_from_command_line=from_cli, dialogs=not args.no_dialogs)
        instance.activated.connect(tray_app.activate)
        waker = SignalWaker(lambda _sig: request_exit())
        if args.quit_after is not None:
            QTimer.singleShot(max(0, int(args.quit_after * 1000)), request_exit)
        tray_app.start()
        # Everything alive now lives as long as the app: keep it out of the cyclic collector's
        # generations so its full collections (which run in the GUI thread) stay short.
        gc.collect()
        gc.freeze()
        started = time.monotonic()
        code = app.exec()
        log.info("event loop ended after %.1f s (code %d)", time.monotonic() - started, code)
        tray_app.stop()
        waker.close()
        instance.activated.disconnect(tray_app.activate)
        tray_app.deleteLater()
        QApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
        return int(code)
    finally:
        if demo is not None:
            demo.stop()
        instance.close()
        crash.uninstall()


if __name__ == "__main__":
    sys.exit(main())
