"""The confirmation: one dialog per session when its total crosses the threshold or the approved step.

:class:`ConfirmationController` is fed by the bridge (``on_snapshot``) and by the gate server
(``request``).  It keeps at most one dialog on screen (``open()``, never ``exec()``): a further
crossing or a new request for the session on screen updates its text, other sessions wait their
turn.  The answer is written to ``cost.decision.json`` (:mod:`mity_cost.core.gate.decisions`) and sent
to every operation waiting on it.  Escape or closing the dialog means pause.
"""

from __future__ import annotations

import itertools
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Literal

from PySide6.QtCore import QObject, Qt, QTimer, Signal, Slot
from PySide6.QtGui import QFont, QIcon, QPixmap
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QStyle,
    QVBoxLayout,
    QWidget,
)

from mity_cost.core.factory import layout
from mity_cost.core.factory.loading import LoadedSession, load_session
from mity_cost.core.figures import totals
from mity_cost.core.gate import decisions
from mity_cost.core.gate.decisions import Decision, DecisionKind
from mity_cost.core.live.snapshot import SessionView, Snapshot
from mity_cost.core.money import Range, format_money
from mity_cost.core.settings import Settings, load_settings

log = logging.getLogger(__name__)

MAX_WAITING = 32
"""Gate requests waiting at once; more are denied at once (an agent gone wild must not pile up)."""
LIVE_SLACK = 2.0
"""Seconds of file-time slack when telling files written while we run from older ones."""
SHOWN_OPERATIONS = 3


@dataclass(frozen=True)
class Verdict:
    """The answer sent to one waiting operation."""

    answer: Literal["approved", "denied"]
    approved_up_to: float | None
    currency: str
    message: str


ReplyCallback = Callable[[Verdict], None]


@dataclass
class _Waiting:
    """A gate request waiting for the user (estimate in the display currency)."""

    id: str
    estimate: float
    operation: str
    reply: ReplyCallback
    reason: str = ""


@dataclass
class _Case:
    """One session waiting for the user's decision."""

    key: str
    session_id: str
    root: Path
    session_dir: Path
    total: Range | None = None
    threshold: float = 0.0
    limit: float = 0.0
    crossed: bool = False
    requests: dict[str, _Waiting] = field(default_factory=dict)

    @property
    def estimate(self) -> float:
        """What the waiting operations together ask to spend."""
        return sum(w.estimate for w in self.requests.values())

    def approves(self) -> float:
        """What ``continue`` would approve: the next step above the total and every estimate."""
        spent = self.total.expected if self.total is not None else 0.0
        return max(decisions.next_step(self.threshold, spent, self.estimate), self.limit)


@dataclass(frozen=True)
class ConfirmView:
    """What the dialog shows (amounts in the display currency)."""

    session_id: str
    root: Path
    symbol: str
    total: Range | None
    threshold: float
    limit: float
    approves: float
    operations: tuple[tuple[str, float], ...] = ()
    reasons: tuple[str, ...] = ()
    """Why operations ask beyond the threshold (budgets), if any."""
    crossed: bool = True
    queued: int = 0


def session_total(session: LoadedSession, settings: Settings) -> Range:
    """The session's total in the display currency (the one rule: ``figures.totals``)."""
    return totals.session_total(session.figures.ledger, settings)


def _session_key(session_dir: Path) -> str:
    return os.path.realpath(session_dir)


def _app_icon() -> QIcon:
    try:
        data = resources.files("mity_cost.assets").joinpath("icons/mity-cost-256.png").read_bytes()
    except (OSError, ModuleNotFoundError):
        return QIcon()
    pixmap = QPixmap()
    return QIcon(pixmap) if pixmap.loadFromData(data) else QIcon()


class ConfirmDialog(QDialog):
    """Continue or pause one session: its total, the threshold, what asks, what continuing approves.

    Accepted means continue; rejected (the Pause button, Escape, closing the window) means pause.
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("confirmDialog")
        self.setWindowTitle("mity-cost: confirm spending")
        self.setWindowIcon(_app_icon())
        self.setWindowFlag(Qt.WindowType.WindowStaysOnTopHint, True)
        self.setMinimumWidth(460)

        icon = QLabel()
        icon.setPixmap(self.style().standardIcon(QStyle.StandardPixmap.SP_MessageBoxWarning).pixmap(48, 48))
        icon.setAlignment(Qt.AlignmentFlag.AlignTop)
        self.title = self._label("title", size_delta=4, bold=True)
        self.session = self._label("session", selectable=True)
        heading = QVBoxLayout()
        heading.addWidget(self.title)
        heading.addWidget(self.session)
        top = QHBoxLayout()
        top.addWidget(icon)
        top.addLayout(heading, 1)

        self.total = self._label("total", size_delta=12, bold=True)
        self.total_range = self._label("totalRange")
        self.threshold = self._label("threshold", size_delta=4)
        self.operation = self._label("operation")
        self.approves = self._label("approves", size_delta=2, bold=True)
        self.hint = self._label("hint")
        self.hint.setText("Pause stops the session. Escape or closing this window also pauses.")
        self.queued = self._label("queued")

        figures = QGridLayout()
        figures.addWidget(self._caption("Session total"), 0, 0)
        figures.addWidget(self.total, 1, 0)
        figures.addWidget(self.total_range, 2, 0)
        figures.addWidget(self._caption("Threshold"), 0, 1)
        figures.addWidget(self.threshold, 1, 1, 2, 1, Qt.AlignmentFlag.AlignTop)
        figures.setColumnStretch(0, 1)
        figures.setColumnStretch(1, 1)

        line = QFrame()
        line.setFrameShape(QFrame.Shape.HLine)
        line.setFrameShadow(QFrame.Shadow.Sunken)

        buttons = QDialogButtonBox()
        self.pause_button = QPushButton("&Pause")
        self.pause_button.setObjectName("pauseButton")
        self.continue_button = QPushButton("&Continue")
        self.continue_button.setObjectName("continueButton")
        buttons.addButton(self.pause_button, QDialogButtonBox.ButtonRole.RejectRole)
        buttons.addButton(self.continue_button, QDialogButtonBox.ButtonRole.AcceptRole)
        self.pause_button.setDefault(True)  # Enter never approves spending by accident
        self.continue_button.setAutoDefault(False)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)

        body = QVBoxLayout(self)
        body.setSpacing(10)
        body.addLayout(top)
        body.addLayout(figures)
        body.addWidget(self.operation)
        body.addWidget(line)
        body.addWidget(self.approves)
        body.addWidget(self.hint)
        body.addWidget(self.queued)
        body.addWidget(buttons)

    def _label(self, name: str, size_delta: int = 0, bold: bool = False, selectable: bool = False) -> QLabel:
        label = QLabel()
        label.setObjectName(name)
        label.setWordWrap(True)
        if size_delta or bold:
            font = QFont(label.font())
            if size_delta:
                font.setPointSize(max(font.pointSize(), 9) + size_delta)
            font.setBold(bold)
            label.setFont(font)
        if selectable:
            label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        return label

    def _caption(self, text: str) -> QLabel:
        label = QLabel(text)
        label.setEnabled(False)  # the palette's muted text colour, light or dark theme alike
        return label

    def show_view(self, view: ConfirmView) -> None:
        """Fill the dialog with one session's figures."""
        sym = view.symbol
        if view.crossed:
            self.title.setText("This session is over its cost threshold")
        else:
            self.title.setText("An operation asks to spend more on this session")
        self.session.setText(f"Session {view.session_id}\n{view.root}")
        if view.total is None:
            self.total.setText("unknown")
            self.total_range.setText("its cost file could not be read")
        else:
            self.total.setText(format_money(view.total.expected, sym))
            self.total_range.setText(
                f"range {format_money(view.total.min, sym)} – {format_money(view.total.max, sym)}"
            )
        threshold = f"{format_money(view.threshold, sym)}"
        if view.limit > view.threshold:
            threshold += f"\napproved so far: up to {format_money(view.limit, sym)}"
        self.threshold.setText(threshold)
        if view.operations:
            lines = [
                f"{text or 'an operation'}: estimate {format_money(amount, sym)}"
                for text, amount in view.operations[:SHOWN_OPERATIONS]
            ]
            if len(view.operations) > SHOWN_OPERATIONS:
                lines.append(f"and {len(view.operations) - SHOWN_OPERATIONS} more waiting")
            if view.total is not None:
                after = view.total.expected + sum(amount for _, amount in view.operations)
                lines.append(f"Session total if it runs: {format_money(after, sym)}")
            lines += [f"Also asked because {reason}" for reason in view.reasons]
            self.operation.setText("Waiting to run: " + "\n".join(lines))
            self.operation.show()
        else:
            self.operation.clear()
            self.operation.hide()
        self.approves.setText(f"Continue approves spending up to {format_money(view.approves, sym)}")
        if view.queued:
            self.queued.setText(f"{view.queued} more session(s) are waiting for a decision after this one.")
            self.queued.show()
        else:
            self.queued.clear()
            self.queued.hide()


class ConfirmationController(QObject):
    """Decides when to ask, keeps one dialog, writes the answer and replies to waiting operations.

    Signals:
        asked(str): a session id is now on screen (or auto-answered).
        decided(str, str): a session id and "continue" or "pause", after the file is written.

    Args:
        auto_answer: ``"continue"`` or ``"pause"`` to answer without showing anything (smoke
            tests, ``--no-dialogs``); ``None`` shows the dialog.
        started_at: wall-clock time; sessions whose file has not changed since then never ask by
            themselves (an old session over the threshold is not a crossing).  Default: now.
        dialog_parent: parent widget of the dialog (the details window, say), if any.
    """

    asked = Signal(str)
    decided = Signal(str, str)

    def __init__(
        self,
        parent: QObject | None = None,
        *,
        auto_answer: str | None = None,
        started_at: float | None = None,
        dialog_parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        if auto_answer not in (None, "continue", "pause"):
            raise ValueError(f"auto_answer must be None, 'continue' or 'pause', not {auto_answer!r}")
        self._auto: DecisionKind | None = None
        if auto_answer is not None:
            self._auto = "continue" if auto_answer == "continue" else "pause"
        self._started_at = time.time() if started_at is None else started_at
        self._dialog_parent = dialog_parent
        self._settings: Settings | None = None
        self._snapshot: Snapshot | None = None
        self._cases: dict[str, _Case] = {}
        self._asked_floor: dict[str, float] = {}
        self._request_case: dict[str, str] = {}
        self._dialog: ConfirmDialog | None = None
        self._shown_key: str | None = None
        self._auto_pending = False
        self._ids = itertools.count(1)

    # -- what the rest of the app sees --------------------------------------------------------

    @property
    def dialog(self) -> ConfirmDialog | None:
        """The dialog while it is on screen, else ``None``."""
        return self._dialog if self._dialog is not None and self._dialog.isVisible() else None

    @property
    def waiting_sessions(self) -> tuple[str, ...]:
        """Session ids waiting for a decision, the one on screen first."""
        return tuple(case.session_id for case in self._cases.values())

    @property
    def settings(self) -> Settings:
        """The settings last given with a snapshot (loaded from disk until then)."""
        if self._settings is None:
            self._settings = load_settings()
        return self._settings

    @Slot(object, object)
    def on_snapshot(self, snapshot: Snapshot, settings: Settings) -> None:
        """Look at every session: ask for those that crossed a step, refresh the one on screen."""
        self._snapshot = snapshot
        self._settings = settings
        for view in snapshot.sessions:
            try:
                self._observe(view, settings)
            except Exception:  # a slot must never die on one odd session
                log.exception("confirmation: could not check session %s", view.session_dir)
        self._refresh()

    def request(
        self,
        session_id: str,
        root: Path | str,
        estimate: float,
        operation: str,
        reply_callback: ReplyCallback,
        *,
        currency: str = "USD",
        reason: str = "",
    ) -> str:
        """An operation asks to spend ``estimate`` (in ``currency``) on a session; returns its id.

        ``reply_callback`` is called exactly once with the :class:`Verdict` (maybe before this
        returns, when no question is needed or the request is refused), unless :meth:`cancel` is
        called first.  A request with a ``reason`` (a budget asks) is always put to the user, even
        when an earlier ``continue`` covers the amount.
        """
        request_id = f"r{next(self._ids)}"
        settings = self.settings
        sym = settings.symbol
        try:
            session_dir = layout.session_path(Path(root), session_id).parent
        except ValueError:
            reply_callback(Verdict("denied", None, settings.currency, "not a usable session id"))
            return request_id
        if len(self._request_case) >= MAX_WAITING:
            reply_callback(Verdict("denied", None, settings.currency, "too many operations are waiting"))
            return request_id
        amount = settings.convert(estimate, currency)
        key = _session_key(session_dir)
        case = self._cases.get(key)
        if case is None:
            case = _Case(key, session_id, Path(root), session_dir)
            self._update_case(case, self._total_of(key, session_dir, settings), settings)
            decision = self._decision(session_dir, session_id, settings)
            spent = case.total.expected if case.total is not None else None
            if (
                not reason
                and decision is not None
                and decision.approves
                and spent is not None
                and not decisions.needs_confirmation(spent + amount, settings.threshold, decision)
            ):
                limit = decisions.allowed_limit(settings.threshold, decision)
                message = f"already approved up to {format_money(limit, sym)}"
                reply_callback(Verdict("approved", limit, settings.currency, message))
                return request_id
            self._cases[key] = case
        case.requests[request_id] = _Waiting(request_id, amount, operation, reply_callback, reason)
        self._request_case[request_id] = key
        log.info("confirmation: %s asks %s for session %s", operation or "an operation", amount, session_id)
        self._refresh()
        return request_id

    def cancel(self, request_id: str) -> None:
        """Forget a waiting request (its client went away); drop the dialog if it was only for it."""
        key = self._request_case.pop(request_id, None)
        case = self._cases.get(key) if key is not None else None
        if case is None:
            return
        case.requests.pop(request_id, None)
        if not case.requests and not case.crossed:
            del self._cases[case.key]
            if self._shown_key == case.key:
                self._hide_dialog()
        self._refresh()

    def raise_dialog(self) -> bool:
        """Bring the waiting dialog to the front (a tray menu entry); ``False`` when none waits."""
        dialog = self.dialog
        if dialog is None:
            return False
        dialog.raise_()
        dialog.activateWindow()
        return True

    def answer(self, decision: DecisionKind) -> None:
        """Answer the session on screen as if the user had clicked (tests, the tray menu)."""
        if self._shown_key is not None:
            self._decide(self._shown_key, decision)

    # -- deciding when to ask -------------------------------------------------------------------

    def _observe(self, view: SessionView, settings: Settings) -> None:
        if view.loaded is None:
            return
        key = _session_key(view.session_dir)
        case = self._cases.get(key)
        live = self._written_while_running(view.loaded, view.session_dir)
        if case is None and not live:
            return
        total = session_total(view.loaded, settings)
        if case is not None:
            self._update_case(case, total, settings)
        if not live:
            return
        decision = self._decision(view.session_dir, view.session_id, settings)
        limit = decisions.allowed_limit(settings.threshold, decision)
        if not decisions.needs_confirmation(total.expected, limit, None):
            return
        floor = decisions.step_floor(settings.threshold, total.expected)
        asked = self._asked_floor.get(key)
        if asked is None and decision is not None and decision.decision == "pause":
            self._asked_floor[key] = floor  # paused before we started: ask again at the next step
            return
        if asked is not None and floor <= asked:
            return
        self._asked_floor[key] = floor
        if case is None:
            case = _Case(key, view.session_id, view.root, view.session_dir)
            self._update_case(case, total, settings)
            self._cases[key] = case
        case.crossed = True
        log.info("confirmation: session %s at %s is over %s", view.session_id, total.expected, limit)

    def _update_case(self, case: _Case, total: Range | None, settings: Settings) -> None:
        decision = self._decision(case.session_dir, case.session_id, settings)
        case.total = total
        case.threshold = settings.threshold
        case.limit = decisions.allowed_limit(settings.threshold, decision)

    def _written_while_running(self, loaded: LoadedSession, session_dir: Path) -> bool:
        mtime_ns = loaded.mtime_ns
        if not mtime_ns:
            try:
                mtime_ns = os.stat(loaded.path or session_dir / layout.SESSION_FILE).st_mtime_ns
            except OSError:
                return True
        return mtime_ns / 1e9 >= self._started_at - LIVE_SLACK

    def _decision(self, session_dir: Path, session_id: str, settings: Settings) -> Decision | None:
        decision = decisions.read_decision(session_dir, session_id)
        if decision is None:
            return None
        return decisions.in_currency(decision, settings.currency, settings.convert)

    def _total_of(self, key: str, session_dir: Path, settings: Settings) -> Range | None:
        if self._snapshot is not None:
            for view in self._snapshot.sessions:
                if view.loaded is not None and _session_key(view.session_dir) == key:
                    return session_total(view.loaded, settings)
        loaded = load_session(session_dir / layout.SESSION_FILE)
        if isinstance(loaded, LoadedSession):
            return session_total(loaded, settings)
        return Range(0.0, 0.0, 0.0) if loaded.kind == "missing" else None

    # -- the dialog -----------------------------------------------------------------------------

    def _view(self, case: _Case) -> ConfirmView:
        return ConfirmView(
            session_id=case.session_id,
            root=case.root,
            symbol=self.settings.symbol,
            total=case.total,
            threshold=case.threshold,
            limit=case.limit,
            approves=case.approves(),
            operations=tuple((w.operation, w.estimate) for w in case.requests.values()),
            reasons=tuple(dict.fromkeys(w.reason for w in case.requests.values() if w.reason)),
            crossed=case.crossed,
            queued=len(self._cases) - 1,
        )

    def _refresh(self) -> None:
        """Show the first waiting case (or update it); hide the dialog when nothing waits."""
        if not self._cases:
            self._hide_dialog()
            return
        key, case = next(iter(self._cases.items()))
        first_time = key != self._shown_key
        self._shown_key = key
        if first_time:
            self.asked.emit(case.session_id)
        if self._auto is not None:
            if not self._auto_pending:
                self._auto_pending = True
                QTimer.singleShot(0, self._auto_decide)
            return
        dialog = self._ensure_dialog()
        dialog.show_view(self._view(case))
        if not dialog.isVisible():
            dialog.open()
            dialog.raise_()
            dialog.activateWindow()

    def _ensure_dialog(self) -> ConfirmDialog:
        if self._dialog is None:
            self._dialog = ConfirmDialog(self._dialog_parent)
            self._dialog.finished.connect(self._on_finished)
        return self._dialog

    def _hide_dialog(self) -> None:
        self._shown_key = None
        if self._dialog is not None and self._dialog.isVisible():
            self._dialog.hide()  # hide() is not an answer: no ``finished``

    @Slot(int)
    def _on_finished(self, result: int) -> None:
        if self._shown_key is None:
            return
        kind: DecisionKind = "continue" if result == QDialog.DialogCode.Accepted else "pause"
        self._decide(self._shown_key, kind)

    @Slot()
    def _auto_decide(self) -> None:
        self._auto_pending = False
        if self._auto is not None and self._shown_key is not None:
            self._decide(self._shown_key, self._auto)

    def _decide(self, key: str, kind: DecisionKind) -> None:
        case = self._cases.pop(key, None)
        if self._shown_key == key:
            self._shown_key = None
        if case is None:
            self._refresh()
            return
        settings = self.settings
        spent = case.total.expected if case.total is not None else 0.0
        approved = case.approves() if kind == "continue" else spent
        decision = Decision(case.session_id, kind, approved, decisions.now(), settings.currency)
        message = f"{kind} up to {format_money(approved, settings.symbol)}"
        try:
            if case.root.is_dir():
                decisions.write_decision(case.session_dir, decision)
        except OSError as exc:
            log.error("confirmation: could not write the decision for %s: %s", case.session_id, exc)
            message += f" (the decision file could not be written: {exc.strerror or exc})"
        floor = decisions.step_floor(case.threshold, spent)
        self._asked_floor[key] = max(self._asked_floor.get(key, 0.0), floor)
        verdict = Verdict(
            "approved" if kind == "continue" else "denied",
            approved if kind == "continue" else None,
            settings.currency,
            f"the user chose to {message}",
        )
        for waiting in case.requests.values():
            self._request_case.pop(waiting.id, None)
            try:
                waiting.reply(verdict)
            except Exception:  # one broken client must not keep the others waiting
                log.exception("confirmation: replying to %s failed", waiting.id)
        log.info("confirmation: session %s: %s", case.session_id, message)
        self.decided.emit(case.session_id, kind)
        self._refresh()
