"""The confirmation socket's protocol and client: framing, checks on both ends, every way asking fails."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from mity_cost.core.gate import protocol
from mity_cost.core.gate.protocol import FrameBuffer, FrameTooLarge, GateAnswer, ProtocolError

SID = "5b7e1c3a-9d2f-4e8b-a6c1-3f0d8e2b7a91"
CRASH = (
    "import os, socket, sys; s = socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); s.listen(); os._exit(1)"
)
"""A program that listens on the socket path and dies without cleaning up (a crashed app)."""


def _request(**changes: object) -> bytes:
    doc: dict[str, object] = {
        "v": 1,
        "id": "abc",
        "sessionId": SID,
        "root": "/work/root",
        "estimate": 0.25,
        "operation": "build the container",
        "currency": "USD",
    }
    doc.update(changes)
    return json.dumps(doc).encode()


# -- paths and permissions ---------------------------------------------------------------------


def test_socket_path_is_in_the_runtime_folder(isolated_home: Path) -> None:
    assert protocol.socket_path() == isolated_home / "run" / "gate.sock"


def test_ensure_runtime_dir_creates_it_0700(isolated_home: Path) -> None:
    folder = protocol.ensure_runtime_dir()
    assert folder == isolated_home / "run"
    assert stat.S_IMODE(os.stat(folder).st_mode) == 0o700
    assert protocol.runtime_dir_problem(folder) is None


def test_ensure_runtime_dir_tightens_a_folder_of_ours_others_can_only_read(tmp_path: Path) -> None:
    folder = tmp_path / "run"
    folder.mkdir(mode=0o755)
    os.chmod(folder, 0o755)
    protocol.ensure_runtime_dir(folder)
    assert stat.S_IMODE(os.stat(folder).st_mode) == 0o700


def test_a_folder_others_can_write_to_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "run"
    folder.mkdir()
    os.chmod(folder, 0o777)
    with pytest.raises(protocol.UnsafeRuntimeDir, match="mode 777"):
        protocol.ensure_runtime_dir(folder)
    assert stat.S_IMODE(os.stat(folder).st_mode) == 0o777  # not silently "fixed"


def test_a_link_in_place_of_the_folder_is_refused(tmp_path: Path) -> None:
    real = tmp_path / "elsewhere"
    real.mkdir(mode=0o700)
    (tmp_path / "run").symlink_to(real)
    with pytest.raises(protocol.UnsafeRuntimeDir, match="not a folder"):
        protocol.ensure_runtime_dir(tmp_path / "run")


def _fake_owner(monkeypatch: pytest.MonkeyPatch, target: Path, uid: int) -> None:
    """Make ``os.lstat`` report ``uid`` as the owner of ``target`` (everything else unchanged)."""
    real_lstat = os.lstat

    def lstat(path: str | Path, *args: Any, **kwargs: Any) -> os.stat_result:
        result = real_lstat(path, *args, **kwargs)
        if os.fspath(path) == os.fspath(target):
            values = list(result)
            values[stat.ST_UID] = uid
            return os.stat_result(values)
        return result

    monkeypatch.setattr(os, "lstat", lstat)


def test_a_folder_of_another_user_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "run"
    folder.mkdir(mode=0o700)
    _fake_owner(monkeypatch, folder, os.getuid() + 1)
    with pytest.raises(protocol.UnsafeRuntimeDir, match="belongs to uid"):
        protocol.ensure_runtime_dir(folder)


# -- peer credentials --------------------------------------------------------------------------


def test_peer_is_authorized_only_for_our_own_uid() -> None:
    me = os.getuid()
    assert protocol.peer_is_authorized(me, me)
    assert not protocol.peer_is_authorized(me + 1, me)
    assert not protocol.peer_is_authorized(None, me)
    assert protocol.peer_is_authorized(me)  # defaults to this process's uid


def test_peer_uid_of_a_real_socket_is_ours() -> None:
    left, right = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    with left, right:
        assert protocol.peer_uid(left) == os.getuid()
        assert protocol.peer_uid_of_fd(right.fileno()) == os.getuid()
        right.sendall(b"x")  # the descriptor itself was left open
        assert left.recv(1) == b"x"


# -- framing and messages ------------------------------------------------------------------------


def test_frames_arriving_one_byte_at_a_time_make_one_message() -> None:
    frames = FrameBuffer()
    message = protocol.encode(json.loads(_request()))
    lines = [line for byte in message for line in frames.feed(bytes([byte]))]
    assert len(lines) == 1
    assert protocol.parse_request(lines[0]).session_id == SID
    assert frames.pending == 0


def test_two_messages_in_one_read_are_both_found_and_blank_lines_skipped() -> None:
    frames = FrameBuffer()
    assert frames.feed(b'{"a":1}\n\n{"b"') == [b'{"a":1}']
    assert frames.feed(b":2}\n") == [b'{"b":2}']


def test_a_line_over_the_limit_is_refused_even_before_it_ends() -> None:
    frames = FrameBuffer(limit=100)
    frames.feed(b"x" * 100)
    with pytest.raises(FrameTooLarge):
        frames.feed(b"x")
    with pytest.raises(FrameTooLarge):
        FrameBuffer(limit=100).feed(b"y" * 150 + b"\n")


def test_room_bounds_what_a_reader_takes() -> None:
    frames = FrameBuffer(limit=10)
    frames.feed(b"abc")
    assert frames.room() == 8


def test_encode_is_one_line_even_with_newlines_in_text() -> None:
    data = protocol.encode({"operation": "two\nlines", "v": 1})
    assert data.endswith(b"\n") and data.count(b"\n") == 1
    with pytest.raises(FrameTooLarge):
        protocol.encode({"x": "y" * protocol.MAX_MESSAGE_BYTES})
    with pytest.raises(ValueError):
        protocol.encode({"estimate": float("nan")})


def test_parse_request_reads_every_field() -> None:
    request = protocol.parse_request(_request())
    assert request == protocol.GateRequest("abc", SID, "/work/root", 0.25, "build the container", "USD")
    assert protocol.parse_request(json.dumps(request.to_json()).encode()) == request
    assert protocol.parse_request(_request(estimate=1)).estimate == 1.0


@pytest.mark.parametrize(
    "line",
    [
        b"not json",
        b"[1]",
        _request(v=2),
        _request(v=True),
        _request(v=None),
        _request(id=""),
        _request(id=5),
        _request(id="x" * 65),
        _request(sessionId="../etc"),
        _request(sessionId=".hidden"),
        _request(sessionId="a/b"),
        _request(root="relative/root"),
        _request(estimate=-1),
        _request(estimate="1"),
        _request(estimate=True),
        _request(estimate=1e13),
        b'{"v":1,"id":"a","sessionId":"s","root":"/r","estimate":NaN,"currency":"USD"}',
        _request(currency="GBP"),
        _request(operation=7),
    ],
)
def test_parse_request_refuses_anything_else(line: bytes) -> None:
    with pytest.raises(ProtocolError):
        protocol.parse_request(line)


def test_the_reason_is_optional_and_travels_when_given() -> None:
    assert protocol.parse_request(_request()).reason == ""
    assert protocol.parse_request(_request(reason="a budget asks")).reason == "a budget asks"
    request = protocol.new_request(SID, "/r", 0.1, "op", "USD", "a budget asks")
    assert protocol.parse_request(json.dumps(request.to_json()).encode()) == request
    assert "reason" not in protocol.new_request(SID, "/r", 0.1).to_json()
    with pytest.raises(ProtocolError):
        protocol.parse_request(_request(reason=["x"]))


def test_parse_request_flattens_and_shortens_the_operation_text() -> None:
    request = protocol.parse_request(_request(operation="rm\n-rf\x1b[31m " + "x" * 900))
    assert "\n" not in request.operation and "\x1b" not in request.operation
    assert len(request.operation) == protocol.MAX_OPERATION_CHARS


def test_answers_round_trip() -> None:
    answer = GateAnswer("abc", "approved", 2.0, "USD", "the user chose to continue")
    assert protocol.parse_answer(protocol.encode(answer.to_json()).rstrip()) == answer
    bare = GateAnswer("abc", "denied")
    assert protocol.parse_answer(protocol.encode(bare.to_json()).rstrip()) == bare
    with pytest.raises(ProtocolError):
        protocol.parse_answer(b'{"v":1,"id":"abc","answer":"maybe"}')


# -- asking ---------------------------------------------------------------------------------------


class FakeApp:
    """A plain socket server in a thread that does what a test says with one request."""

    def __init__(self, path: Path, behaviour: Callable[[socket.socket, dict[str, object]], None]) -> None:
        protocol.ensure_runtime_dir(path.parent)
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(os.fspath(path))
        self.listener.listen(4)
        self.listener.settimeout(5)
        self.behaviour = behaviour
        self.received: list[dict[str, object]] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        try:
            conn, _ = self.listener.accept()
        except OSError:
            return
        with conn:
            conn.settimeout(5)
            data = b""
            while not data.endswith(b"\n"):
                chunk = conn.recv(4096)
                if not chunk:
                    return
                data += chunk
            request = json.loads(data)
            self.received.append(request)
            self.behaviour(conn, request)

    def close(self) -> None:
        self.listener.close()
        self.thread.join(5)


@pytest.fixture
def fake_app(isolated_home: Path) -> Iterator[Callable[..., FakeApp]]:
    apps: list[FakeApp] = []

    def start(behaviour: Callable[[socket.socket, dict[str, object]], None]) -> FakeApp:
        app = FakeApp(protocol.socket_path(), behaviour)
        apps.append(app)
        return app

    yield start
    for app in apps:
        app.close()


def _answer(kind: str, **extra: object) -> Callable[[socket.socket, dict[str, object]], None]:
    def behaviour(conn: socket.socket, request: dict[str, object]) -> None:
        conn.sendall(protocol.encode({"v": 1, "id": request["id"], "answer": kind, **extra}))

    return behaviour


def test_approved(fake_app: Callable[..., FakeApp], tmp_path: Path) -> None:
    app = fake_app(_answer("approved", approvedUpTo=2.0, currency="USD"))
    outcome = protocol.ask_detailed(SID, tmp_path, 0.25, "build", timeout=5)
    assert outcome.result == "approved"
    assert outcome.approved_up_to == 2.0
    sent = app.received[0]
    assert sent["v"] == 1 and sent["sessionId"] == SID and sent["estimate"] == 0.25
    assert sent["root"] == str(tmp_path) and sent["operation"] == "build" and sent["currency"] == "USD"


def test_the_reason_is_sent(fake_app: Callable[..., FakeApp], tmp_path: Path) -> None:
    app = fake_app(_answer("approved"))
    assert protocol.ask(SID, tmp_path, 0.25, timeout=5, reason="budget shop is over") == "approved"
    assert app.received[0]["reason"] == "budget shop is over"


def test_denied(fake_app: Callable[..., FakeApp], tmp_path: Path) -> None:
    fake_app(_answer("denied", message="the user chose to pause"))
    outcome = protocol.ask_detailed(SID, tmp_path, 0.25, timeout=5)
    assert outcome.result == "denied"
    assert "pause" in outcome.message


def test_an_answer_for_another_request_is_not_ours(fake_app: Callable[..., FakeApp], tmp_path: Path) -> None:
    def behaviour(conn: socket.socket, request: dict[str, object]) -> None:
        conn.sendall(protocol.encode({"v": 1, "id": "someone-else", "answer": "approved"}))
        conn.sendall(protocol.encode({"v": 1, "id": request["id"], "answer": "denied"}))

    fake_app(behaviour)
    assert protocol.ask(SID, tmp_path, 0.25, timeout=5) == "denied"


def test_timeout_when_nobody_answers(fake_app: Callable[..., FakeApp], tmp_path: Path) -> None:
    done = threading.Event()
    fake_app(lambda conn, request: done.wait(5))
    try:
        outcome = protocol.ask_detailed(SID, tmp_path, 0.25, timeout=0.3)
    finally:
        done.set()
    assert outcome.result == "timeout"


def test_closing_without_an_answer_is_no_answer(fake_app: Callable[..., FakeApp], tmp_path: Path) -> None:
    fake_app(lambda conn, request: None)
    assert protocol.ask(SID, tmp_path, 0.25, timeout=5) == "no-app"


def test_an_unreadable_answer_is_no_answer(fake_app: Callable[..., FakeApp], tmp_path: Path) -> None:
    fake_app(lambda conn, request: conn.sendall(b'{"v": 9}\n'))
    outcome = protocol.ask_detailed(SID, tmp_path, 0.25, timeout=5)
    assert outcome.result == "no-app"
    assert "cannot read" in outcome.message


def test_no_app_when_nothing_ever_listened(isolated_home: Path, tmp_path: Path) -> None:
    outcome = protocol.ask_detailed(SID, tmp_path, 0.25, timeout=5)
    assert outcome.result == "no-app"
    protocol.ensure_runtime_dir()
    assert protocol.ask(SID, tmp_path, 0.25, timeout=5) == "no-app"


def test_no_app_on_a_socket_left_by_a_crash(isolated_home: Path, tmp_path: Path) -> None:
    path = protocol.socket_path()
    protocol.ensure_runtime_dir(path.parent)
    subprocess.run([sys.executable, "-c", CRASH, os.fspath(path)], check=False, timeout=30)
    assert stat.S_ISSOCK(os.lstat(path).st_mode)
    outcome = protocol.ask_detailed(SID, tmp_path, 0.25, timeout=5)
    assert outcome.result == "no-app"
    assert "left over" in outcome.message


def test_client_refuses_a_socket_owned_by_another_user(
    fake_app: Callable[..., FakeApp], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = fake_app(_answer("approved"))
    _fake_owner(monkeypatch, protocol.socket_path(), os.getuid() + 1)
    outcome = protocol.ask_detailed(SID, tmp_path, 0.25, timeout=5)
    assert outcome.result == "no-app"
    assert "belongs to uid" in outcome.message
    app.close()
    assert app.received == []  # nothing was sent


def test_client_refuses_a_folder_others_can_enter(fake_app: Callable[..., FakeApp], tmp_path: Path) -> None:
    app = fake_app(_answer("approved"))
    os.chmod(protocol.socket_path().parent, 0o755)
    outcome = protocol.ask_detailed(SID, tmp_path, 0.25, timeout=5)
    assert outcome.result == "no-app"
    assert "mode 755" in outcome.message
    app.close()
    assert app.received == []


def test_client_refuses_a_regular_file_in_place_of_the_socket(isolated_home: Path, tmp_path: Path) -> None:
    path = protocol.socket_path()
    protocol.ensure_runtime_dir(path.parent)
    path.write_text("not a socket")
    outcome = protocol.ask_detailed(SID, tmp_path, 0.25, timeout=5)
    assert outcome.result == "no-app"
    assert "not a socket" in outcome.message


def test_client_refuses_a_server_run_by_another_user(
    fake_app: Callable[..., FakeApp], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = fake_app(_answer("approved"))
    monkeypatch.setattr(protocol, "peer_uid", lambda sock: os.getuid() + 1)
    outcome = protocol.ask_detailed(SID, tmp_path, 0.25, timeout=5)
    assert outcome.result == "no-app"
    assert "served by uid" in outcome.message
    app.close()
    assert app.received == []


def test_a_bad_estimate_is_the_callers_mistake(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        protocol.ask(SID, tmp_path, float("nan"))
    with pytest.raises(ValueError):
        protocol.ask(SID, tmp_path, -1.0)
