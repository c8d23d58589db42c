"""The app's end of the confirmation socket, with real clients (``protocol.ask`` and raw sockets)."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest
from PySide6.QtCore import QCoreApplication, Qt
from PySide6.QtNetwork import QLocalSocket
from PySide6.QtTest import QTest
from pytestqt.qtbot import QtBot

from mity_cost.core.gate import protocol
from mity_cost.core.gate.protocol import Outcome
from mity_cost.ui import gate_server
from mity_cost.ui.confirmation import ConfirmationController, ReplyCallback, Verdict
from mity_cost.ui.gate_server import GateServer
from tests.ui.test_confirmation import SID, dialog_of, shown, write_session

CRASH = (
    "import os, socket, sys; s = socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); s.listen(); os._exit(1)"
)


class FakeHandler:
    """Records requests; the test answers them."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, str, float, str, str, ReplyCallback]] = []
        self.cancelled: list[str] = []
        self.reasons: list[str] = []

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
        handle = f"h{len(self.requests)}"
        self.reasons.append(reason)
        self.requests.append((handle, session_id, str(root), estimate, operation, currency, reply_callback))
        return handle

    def cancel(self, request_id: str) -> None:
        self.cancelled.append(request_id)


@pytest.fixture
def pool() -> Iterator[ThreadPoolExecutor]:
    executor = ThreadPoolExecutor(max_workers=2)
    yield executor
    executor.shutdown(wait=True)


@pytest.fixture
def handler() -> FakeHandler:
    return FakeHandler()


@pytest.fixture
def server(qtbot: QtBot, handler: FakeHandler) -> Iterator[GateServer]:
    srv = GateServer(handler)
    assert srv.start(), srv.error
    yield srv
    srv.stop()


def ask_in_thread(
    pool: ThreadPoolExecutor, root: Path, timeout: float = 10, estimate: float = 0.3
) -> Future[Outcome]:
    return pool.submit(protocol.ask_detailed, SID, root, estimate, "build the container", timeout)


def raw_client() -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(5)
    sock.connect(os.fspath(protocol.socket_path()))
    return sock


def read_until_closed(client: socket.socket, qtbot: QtBot) -> bytes:
    """Everything the server sends until it closes the connection (the event loop keeps running)."""
    client.setblocking(False)
    received = bytearray()

    def closed() -> bool:
        try:
            chunk = client.recv(65536)
        except BlockingIOError:
            return False
        except ConnectionResetError:
            return True
        received.extend(chunk)
        return not chunk

    qtbot.waitUntil(closed)
    return bytes(received)


def request_bytes(**changes: object) -> bytes:
    doc: dict[str, object] = {
        "v": 1,
        "id": "req-1",
        "sessionId": SID,
        "root": "/some/root",
        "estimate": 0.5,
        "operation": "tests",
        "currency": "USD",
    }
    doc.update(changes)
    return json.dumps(doc).encode() + b"\n"


# -- listening -------------------------------------------------------------------------------------


def test_listens_on_a_private_socket(server: GateServer, isolated_home: Path) -> None:
    assert server.listening and server.path == isolated_home / "run" / "gate.sock"
    assert stat.S_ISSOCK(os.lstat(server.path).st_mode)
    assert stat.S_IMODE(os.lstat(server.path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(server.path.parent).st_mode) == 0o700


def test_stop_removes_the_socket(server: GateServer) -> None:
    server.stop()
    assert not server.listening
    assert not server.path.exists()


def test_a_socket_left_by_a_crash_is_replaced(qtbot: QtBot, handler: FakeHandler) -> None:
    path = protocol.socket_path()
    protocol.ensure_runtime_dir(path.parent)
    subprocess.run([sys.executable, "-c", CRASH, os.fspath(path)], check=False, timeout=30)
    assert stat.S_ISSOCK(os.lstat(path).st_mode)  # left behind, nobody listening
    srv = GateServer(handler)
    try:
        assert srv.start(), srv.error
        assert not srv.another_instance
        with raw_client() as client:
            client.sendall(request_bytes())
            qtbot.waitUntil(lambda: len(handler.requests) == 1)
    finally:
        srv.stop()


def test_a_live_instance_is_reported_and_not_stolen(qtbot: QtBot, handler: FakeHandler) -> None:
    path = protocol.socket_path()
    protocol.ensure_runtime_dir(path.parent)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as other:
        other.bind(os.fspath(path))
        other.listen(4)
        inode = os.lstat(path).st_ino
        srv = GateServer(handler)
        assert not srv.start()
        assert srv.another_instance
        assert srv.error is not None and "another mity-cost app" in srv.error
        assert os.lstat(path).st_ino == inode  # its socket is still there


def test_something_else_in_the_way_is_left_alone(qtbot: QtBot, handler: FakeHandler) -> None:
    path = protocol.socket_path()
    path.mkdir(parents=True)
    srv = GateServer(handler)
    assert not srv.start()
    assert srv.error is not None and not srv.another_instance
    assert path.is_dir()


def test_an_unsafe_folder_is_refused(qtbot: QtBot, handler: FakeHandler) -> None:
    folder = protocol.socket_path().parent
    folder.mkdir(parents=True)
    os.chmod(folder, 0o777)
    srv = GateServer(handler)
    assert not srv.start()
    assert srv.error is not None and "mode 777" in srv.error


# -- requests and answers ----------------------------------------------------------------------------


def test_a_request_reaches_the_handler_and_the_answer_the_client(
    server: GateServer, handler: FakeHandler, pool: ThreadPoolExecutor, qtbot: QtBot, tmp_path: Path
) -> None:
    future = ask_in_thread(pool, tmp_path)
    qtbot.waitUntil(lambda: len(handler.requests) == 1)
    _, session_id, root, estimate, operation, currency, reply = handler.requests[0]
    assert (session_id, root, estimate, operation, currency) == (
        SID,
        str(tmp_path),
        0.3,
        "build the container",
        "USD",
    )
    reply(Verdict("approved", 2.0, "USD", "the user chose to continue up to $2.00"))
    qtbot.waitUntil(future.done)
    outcome = future.result()
    assert outcome.result == "approved" and outcome.approved_up_to == 2.0
    qtbot.waitUntil(lambda: server.connection_count == 0)
    assert handler.cancelled == []


def test_a_client_that_gives_up_withdraws_its_request(
    server: GateServer, handler: FakeHandler, pool: ThreadPoolExecutor, qtbot: QtBot, tmp_path: Path
) -> None:
    future = ask_in_thread(pool, tmp_path, timeout=0.3)
    qtbot.waitUntil(lambda: len(handler.requests) == 1)
    qtbot.waitUntil(future.done)
    assert future.result().result == "timeout"
    qtbot.waitUntil(lambda: handler.cancelled == ["h0"])
    handler.requests[0][6](Verdict("approved", 2.0, "USD", "too late"))  # a late answer is harmless
    assert server.connection_count == 0


def test_bytes_arriving_one_at_a_time_make_one_request(
    server: GateServer, handler: FakeHandler, qtbot: QtBot
) -> None:
    with raw_client() as client:
        for byte in request_bytes():
            client.sendall(bytes([byte]))
            QCoreApplication.processEvents()
        qtbot.waitUntil(lambda: len(handler.requests) == 1)
        assert handler.requests[0][1:6] == (SID, "/some/root", 0.5, "tests", "USD")
        assert handler.reasons == [""]
        handler.requests[0][6](Verdict("denied", None, "USD", "paused"))
        answer = protocol.parse_answer(read_until_closed(client, qtbot).rstrip(b"\n"))
    assert answer.id == "req-1" and answer.answer == "denied"


def test_a_reason_reaches_the_handler(server: GateServer, handler: FakeHandler, qtbot: QtBot) -> None:
    with raw_client() as client:
        client.sendall(request_bytes(reason="budget app:shop (month) would be exceeded"))
        qtbot.waitUntil(lambda: len(handler.requests) == 1)
    assert handler.reasons == ["budget app:shop (month) would be exceeded"]


def test_a_handler_that_fails_gets_the_client_a_no(
    server: GateServer, handler: FakeHandler, qtbot: QtBot, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object, **kwargs: object) -> str:
        raise KeyError("boom")

    monkeypatch.setattr(handler, "request", broken)
    with raw_client() as client:
        client.sendall(request_bytes())
        answer = protocol.parse_answer(read_until_closed(client, qtbot).rstrip(b"\n"))
    assert answer.answer == "denied" and answer.id == "req-1"


def test_an_oversized_request_is_refused_and_the_connection_closed(
    server: GateServer, handler: FakeHandler, qtbot: QtBot
) -> None:
    sent = threading.Event()

    def flood(client: socket.socket) -> None:
        with contextlib.suppress(OSError):
            client.sendall(b"x" * (10 * 1024 * 1024))
        sent.set()

    with raw_client() as client:
        thread = threading.Thread(target=flood, args=(client,))
        thread.start()
        qtbot.waitUntil(lambda: server.connection_count == 0 and sent.is_set(), timeout=10_000)
        thread.join(5)
        assert read_until_closed(client, qtbot) == b""  # closed by the server, nothing answered
    assert handler.requests == []


def test_a_bad_request_gets_a_denial_that_says_why(
    server: GateServer, handler: FakeHandler, qtbot: QtBot
) -> None:
    with raw_client() as client:
        client.sendall(request_bytes(v=2))
        data = read_until_closed(client, qtbot)
    answer = protocol.parse_answer(data.rstrip())
    assert answer.answer == "denied" and answer.message is not None and "version" in answer.message
    assert handler.requests == []


def test_a_peer_of_another_user_is_refused(
    server: GateServer, handler: FakeHandler, qtbot: QtBot, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(protocol, "peer_uid_of_fd", lambda fd: os.getuid() + 1)
    with raw_client() as client:
        client.sendall(request_bytes())
        assert read_until_closed(client, qtbot) == b""
    assert handler.requests == []


def test_a_peer_whose_uid_cannot_be_read_is_refused(
    server: GateServer, handler: FakeHandler, qtbot: QtBot, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(protocol, "peer_uid_of_fd", lambda fd: None)
    with raw_client() as client:
        client.sendall(request_bytes())
        assert read_until_closed(client, qtbot) == b""
    assert handler.requests == []


def test_a_client_that_never_sends_is_dropped(
    handler: FakeHandler, qtbot: QtBot, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(gate_server, "REQUEST_WAIT_MS", 50)
    srv = GateServer(handler)
    assert srv.start()
    try:
        with raw_client() as client:
            qtbot.waitUntil(lambda: srv.connection_count == 1)
            qtbot.waitUntil(lambda: srv.connection_count == 0)
            assert read_until_closed(client, qtbot) == b""
    finally:
        srv.stop()


def test_connections_are_released(server: GateServer, qtbot: QtBot) -> None:
    for _ in range(100):
        raw_client().close()
        QCoreApplication.processEvents()
    qtbot.waitUntil(lambda: server.connection_count == 0)
    QCoreApplication.sendPostedEvents(None, 0)  # run the deleteLater()s
    qtbot.waitUntil(lambda: not server.findChildren(QLocalSocket))


def test_stop_withdraws_what_is_waiting(
    server: GateServer, handler: FakeHandler, pool: ThreadPoolExecutor, qtbot: QtBot, tmp_path: Path
) -> None:
    future = ask_in_thread(pool, tmp_path)
    qtbot.waitUntil(lambda: len(handler.requests) == 1)
    server.stop()
    assert handler.cancelled == ["h0"]
    qtbot.waitUntil(future.done)
    assert future.result().result == "no-app"  # no answer: the caller fails closed


# -- with the real controller ----------------------------------------------------------------------


@pytest.fixture
def controller(qtbot: QtBot) -> Iterator[ConfirmationController]:
    ctrl = ConfirmationController(started_at=0.0)
    yield ctrl
    if shown(ctrl) is not None:
        dialog_of(ctrl).hide()


@pytest.mark.parametrize(("button", "expected"), [("continue", "approved"), ("pause", "denied")])
def test_the_user_answers_in_the_dialog(
    controller: ConfirmationController,
    pool: ThreadPoolExecutor,
    qtbot: QtBot,
    tmp_path: Path,
    button: str,
    expected: str,
) -> None:
    srv = GateServer(controller)
    assert srv.start()
    try:
        view = write_session(tmp_path, SID, 0.9)
        future = ask_in_thread(pool, tmp_path)
        qtbot.waitUntil(lambda: shown(controller) is not None)
        dialog = shown(controller)
        assert dialog is not None and "build the container" in dialog.operation.text()
        target = dialog.continue_button if button == "continue" else dialog.pause_button
        QTest.mouseClick(target, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(future.done)
        assert future.result().result == expected
        decision = json.loads((view.session_dir / "cost.decision.json").read_text())
        assert decision["decision"] == button
    finally:
        srv.stop()


def test_a_client_gone_before_the_answer_closes_its_dialog(
    controller: ConfirmationController, pool: ThreadPoolExecutor, qtbot: QtBot, tmp_path: Path
) -> None:
    srv = GateServer(controller)
    assert srv.start()
    try:
        view = write_session(tmp_path, SID, 0.9)
        future = ask_in_thread(pool, tmp_path, timeout=0.4)
        qtbot.waitUntil(lambda: shown(controller) is not None)
        qtbot.waitUntil(future.done)
        assert future.result().result == "timeout"
        qtbot.waitUntil(lambda: shown(controller) is None)
        assert not (view.session_dir / "cost.decision.json").exists()
    finally:
        srv.stop()


def test_two_clients_for_two_sessions_are_asked_in_turn(
    controller: ConfirmationController, pool: ThreadPoolExecutor, qtbot: QtBot, tmp_path: Path
) -> None:
    srv = GateServer(controller)
    assert srv.start()
    try:
        write_session(tmp_path, SID, 0.9)
        write_session(tmp_path, "s-two", 0.95)
        first = ask_in_thread(pool, tmp_path)
        qtbot.waitUntil(lambda: controller.waiting_sessions == (SID,))
        second = pool.submit(protocol.ask_detailed, "s-two", tmp_path, 0.2, "scan", 10)
        qtbot.waitUntil(lambda: controller.waiting_sessions == (SID, "s-two"))
        assert SID in dialog_of(controller).session.text()
        controller.answer("continue")
        qtbot.waitUntil(first.done)
        assert first.result().result == "approved" and not second.done()
        assert "s-two" in dialog_of(controller).session.text()  # the same single dialog, next session
        controller.answer("pause")
        qtbot.waitUntil(second.done)
        assert second.result().result == "denied"
        assert shown(controller) is None
    finally:
        srv.stop()
