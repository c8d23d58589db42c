"""The app's end of the confirmation socket: ``mity-cost gate`` asks, the user answers in the dialog.

A ``QLocalServer`` on the path of :func:`mity_cost.core.gate.protocol.socket_path` (a 0700 folder,
the socket 0600), fully asynchronous: slots on ``newConnection``/``readyRead``, partial reads
buffered, every socket deleted on disconnect.  Each peer's uid is checked (``SO_PEERCRED``) before a
byte is read.  A socket left behind by a crash is replaced; one a live instance answers on is left
alone and reported.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import socket
import stat
from pathlib import Path
from typing import Protocol

from PySide6.QtCore import QObject, QTimer, Slot
from PySide6.QtNetwork import QLocalServer, QLocalSocket

from mity_cost.core.gate import protocol
from mity_cost.core.gate.protocol import FrameBuffer, FrameTooLarge, GateAnswer, GateRequest, ProtocolError
from mity_cost.ui.confirmation import ReplyCallback, Verdict

log = logging.getLogger(__name__)

MAX_CONNECTIONS = 64
REQUEST_WAIT_MS = 10_000
"""A client has this long to send its request after connecting."""
PROBE_TIMEOUT = 1.0


class RequestHandler(Protocol):
    """Who answers gate requests (the :class:`~mity_cost.ui.confirmation.ConfirmationController`)."""

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
        """Take a request; call ``reply_callback`` once with the verdict; return the request's id."""
        ...

    def cancel(self, request_id: str) -> None:
        """The client went away before the answer."""
        ...


class _Connection(QObject):
    """One client: its socket (a child, deleted with it), what it sent so far, and its request."""

    def __init__(self, sock: QLocalSocket, parent: QObject) -> None:
        super().__init__(parent)
        sock.setParent(self)
        self.socket = sock
        self.frames = FrameBuffer()
        self.request: GateRequest | None = None
        self.handle: str | None = None
        self.answered = False
        self.closed = False
        self.timer = QTimer(self)
        self.timer.setSingleShot(True)
        self.timer.setInterval(REQUEST_WAIT_MS)


def probe(path: Path) -> str:
    """What is at ``path``: ``"none"``, ``"live"`` (a server answers), ``"stale"`` (ours, nobody
    listens) or ``"foreign"`` (not a socket of ours: never remove it)."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return "none"
    except OSError:
        return "foreign"
    uid = protocol.own_uid()
    if uid is not None and info.st_uid != uid:
        return "foreign"
    if not stat.S_ISSOCK(info.st_mode):
        return "stale" if stat.S_ISREG(info.st_mode) else "foreign"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(PROBE_TIMEOUT)
    try:
        sock.connect(os.fspath(path))
    except (ConnectionRefusedError, FileNotFoundError):
        return "stale"
    except OSError:
        return "live"  # it exists and did not refuse: assume someone is there (never steal)
    finally:
        sock.close()
    return "live"


class GateServer(QObject):
    """Listens for gate requests and hands them to ``handler``.

    Sockets and timers are connected to this object's slots, which find their client with
    ``sender()``: no lambdas capture a client, so none outlives the server.
    """

    def __init__(
        self, handler: RequestHandler, path: Path | None = None, parent: QObject | None = None
    ) -> None:
        super().__init__(parent)
        self._handler = handler
        self._path = path
        self._server = QLocalServer(self)
        self._server.newConnection.connect(self._on_new_connection)
        self._connections: dict[QObject, _Connection] = {}
        """Every client, by its socket and by its timer (what ``sender()`` gives)."""
        self.error: str | None = None
        self.another_instance = False

    @property
    def path(self) -> Path:
        """The socket's path."""
        return self._path or protocol.socket_path()

    @property
    def listening(self) -> bool:
        """True while accepting requests."""
        return self._server.isListening()

    @property
    def connection_count(self) -> int:
        """Clients connected now."""
        return len({id(conn) for conn in self._connections.values()})

    def start(self) -> bool:
        """Listen; ``False`` (and ``error`` says why) when the folder is unsafe or another app listens."""
        if self.listening:
            return True
        self.error = None
        self.another_instance = False
        if not hasattr(socket, "AF_UNIX"):
            self.error = "the confirmation socket needs Unix sockets, which this platform lacks"
            return False
        try:
            protocol.ensure_runtime_dir(self.path.parent)
            sock = self._bind()
        except protocol.GateError as exc:
            self.error = str(exc)
            log.warning("gate: not listening: %s", exc)
            return False
        fd = sock.detach()
        if not self._server.listen(fd):
            os.close(fd)
            self.error = f"cannot listen on {self.path}: {self._server.errorString()}"
            log.warning("gate: %s", self.error)
            return False
        log.info("gate: listening on %s", self.path)
        return True

    def _bind(self) -> socket.socket:
        """A bound, listening, non-blocking socket at the path (0600), replacing a stale one."""
        path = self.path
        for attempt in (1, 2):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.bind(os.fspath(path))
                os.chmod(path, protocol.SOCKET_MODE)
                sock.listen(16)
                sock.setblocking(False)
                return sock
            except OSError as exc:
                sock.close()
                if exc.errno != errno.EADDRINUSE or attempt == 2:
                    raise protocol.GateError(f"cannot listen on {path}: {exc.strerror or exc}") from exc
            found = probe(path)
            if found == "live":
                self.another_instance = True
                raise protocol.GateError(f"another mity-cost app already answers on {path}")
            if found == "foreign":
                raise protocol.GateError(f"{path} is in the way and is not a socket of ours")
            log.info("gate: removing a socket left by a previous run: %s", path)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
        raise protocol.GateError(f"cannot listen on {path}")  # pragma: no cover - loop returns or raises

    def stop(self) -> None:
        """Stop listening (removing the socket file) and drop every client."""
        for conn in list(self._connections.values()):
            conn.socket.abort()
            self._release(conn)
        if self._server.isListening():
            self._server.close()

    # -- connections --------------------------------------------------------------------------

    @Slot()
    def _on_new_connection(self) -> None:
        while self._server.hasPendingConnections():
            sock = self._server.nextPendingConnection()
            uid = protocol.peer_uid_of_fd(int(sock.socketDescriptor()))
            if not protocol.peer_is_authorized(uid):
                log.warning("gate: refused a connection from uid %s", uid)
                sock.abort()
                sock.deleteLater()
                continue
            if len(self._connections) >= MAX_CONNECTIONS:
                log.warning("gate: too many connections; refusing one")
                sock.abort()
                sock.deleteLater()
                continue
            conn = _Connection(sock, self)
            self._connections[sock] = conn
            self._connections[conn.timer] = conn
            sock.readyRead.connect(self._on_ready_read)
            sock.disconnected.connect(self._on_disconnected)
            conn.timer.timeout.connect(self._on_expired)
            conn.timer.start()
            if sock.bytesAvailable():
                self._read(conn)

    def _sender_connection(self) -> _Connection | None:
        sender = self.sender()
        return self._connections.get(sender) if sender is not None else None

    @Slot()
    def _on_ready_read(self) -> None:
        conn = self._sender_connection()
        if conn is not None:
            self._read(conn)

    @Slot()
    def _on_disconnected(self) -> None:
        conn = self._sender_connection()
        if conn is not None:
            self._release(conn)

    @Slot()
    def _on_expired(self) -> None:
        conn = self._sender_connection()
        if conn is not None:
            self._drop(conn, "no request in time")

    def _read(self, conn: _Connection) -> None:
        if conn.closed:
            return
        while conn.socket.bytesAvailable() > 0 and not conn.closed:
            data = bytes(conn.socket.read(conn.frames.room()).data())
            if not data:
                break
            try:
                lines = conn.frames.feed(data)
            except FrameTooLarge as exc:
                self._drop(conn, str(exc))
                return
            for line in lines:
                if conn.request is None:
                    self._take(conn, line)

    def _take(self, conn: _Connection, line: bytes) -> None:
        try:
            request = protocol.parse_request(line)
        except ProtocolError as exc:
            log.warning("gate: bad request: %s", exc)
            self._send(conn, GateAnswer("", "denied", message=f"bad request: {exc}"))
            return
        conn.request = request
        conn.timer.stop()

        def reply(verdict: Verdict, c: _Connection = conn, r: GateRequest = request) -> None:
            answer = GateAnswer(
                r.id, verdict.answer, verdict.approved_up_to, verdict.currency, verdict.message
            )
            self._send(c, answer)

        try:
            conn.handle = self._handler.request(
                request.session_id,
                request.root,
                request.estimate,
                request.operation,
                reply,
                currency=request.currency,
                reason=request.reason,
            )
        except Exception:  # a slot must not die; the client gets a "no" rather than a hang
            log.exception("gate: the request for session %s failed", request.session_id)
            self._send(conn, GateAnswer(request.id, "denied", message="the app failed to handle the request"))

    def _send(self, conn: _Connection, answer: GateAnswer) -> None:
        """Write the answer and close gracefully (the client reads it, then sees the end)."""
        conn.answered = True
        if conn.closed:
            return
        try:
            conn.socket.write(protocol.encode(answer.to_json()))
            conn.socket.flush()
            conn.socket.disconnectFromServer()
        except RuntimeError:  # the socket is already gone (the app is shutting down)
            conn.closed = True

    def _drop(self, conn: _Connection, why: str) -> None:
        log.warning("gate: closing a connection: %s", why)
        conn.socket.abort()
        self._release(conn)

    def _release(self, conn: _Connection) -> None:
        """Forget a client; a request it left unanswered is withdrawn."""
        if conn.closed:
            return
        conn.closed = True
        conn.timer.stop()
        self._connections.pop(conn.socket, None)
        self._connections.pop(conn.timer, None)
        if conn.handle is not None and not conn.answered:
            self._handler.cancel(conn.handle)
        conn.deleteLater()  # and its socket with it
