"""The confirmation socket between ``mity-cost gate`` and the running tray app.

A Unix socket in this user's runtime folder (``core.paths.runtime_dir()``, mode 0700), carrying one
newline-terminated JSON request and one answer per connection, each at most ``MAX_MESSAGE_BYTES``:

- request: ``{"v": 1, "id", "sessionId", "root", "estimate", "operation", "currency", "reason"?}``
  (``reason``: why the gate asks although the threshold allows it, e.g. a budget; such a request
  is always put to the user)
- answer: ``{"v": 1, "id", "answer": "approved" | "denied", "approvedUpTo"?, "currency"?, "message"?}``

Both sides check who is at the other end: the client refuses a folder or socket that is not this
user's alone, the server refuses a peer whose uid (``SO_PEERCRED``) is not its own.  Every failure
on the client side is a "no" (fail closed).  Stdlib only: ``gate`` imports it.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import socket
import stat
import struct
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from mity_cost.core import paths
from mity_cost.core.factory.layout import safe_name

PROTOCOL_VERSION = 1
SOCKET_NAME = "gate.sock"
MAX_MESSAGE_BYTES = 16 * 1024
"""A request is about 300 bytes; a line longer than this is refused and the connection closed."""
MAX_OPERATION_CHARS = 500
MAX_ID_CHARS = 64
DEFAULT_TIMEOUT = 120.0
SOCKET_MODE = 0o600
DIR_MODE = 0o700

AskResult = Literal["approved", "denied", "timeout", "no-app"]
AnswerKind = Literal["approved", "denied"]
CURRENCIES = ("USD", "EUR")


class GateError(Exception):
    """Something about the confirmation socket that must stop us."""


class UnsafeRuntimeDir(GateError):
    """The socket's folder is not this user's alone."""


class ProtocolError(GateError):
    """A message that is not what the protocol allows."""


class FrameTooLarge(ProtocolError):
    """A message longer than ``MAX_MESSAGE_BYTES``."""


def own_uid() -> int | None:
    """This process's uid (``None`` where the platform has none)."""
    return os.getuid() if hasattr(os, "getuid") else None


def socket_path() -> Path:
    """Where the running app listens: ``<runtime_dir>/gate.sock``."""
    return paths.runtime_dir() / SOCKET_NAME


# -- the folder and the socket file -------------------------------------------------------------


def runtime_dir_problem(folder: Path) -> str | None:
    """Why ``folder`` must not hold our socket (not a real folder, not ours, open to others), or ``None``."""
    try:
        info = os.lstat(folder)
    except FileNotFoundError:
        return f"{folder} does not exist"
    except OSError as exc:
        return f"{folder}: {exc.strerror or exc}"
    if not stat.S_ISDIR(info.st_mode):
        return f"{folder} is not a folder (a link or a file)"
    uid = own_uid()
    if uid is not None and info.st_uid != uid:
        return f"{folder} belongs to uid {info.st_uid}, not to you (uid {uid})"
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o077:
        return f"{folder} has mode {mode:o}: other users could reach it (`chmod 700 {folder}`)"
    return None


def ensure_runtime_dir(folder: Path | None = None) -> Path:
    """Create the socket's folder (0700) if needed and check it is ours alone.

    A folder of ours that others can only read is tightened to 0700 (nobody else could have put
    anything in it); one that others can write to, or that is not ours, is refused.

    Raises:
        UnsafeRuntimeDir: the folder cannot be trusted.
    """
    target = folder or paths.runtime_dir()
    try:
        target.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    except OSError as exc:
        raise UnsafeRuntimeDir(f"cannot create {target}: {exc.strerror or exc}") from exc
    with contextlib.suppress(OSError):
        info = os.lstat(target)
        mine = own_uid() is None or info.st_uid == own_uid()
        if stat.S_ISDIR(info.st_mode) and mine and not stat.S_IMODE(info.st_mode) & 0o022:
            os.chmod(target, DIR_MODE)
    problem = runtime_dir_problem(target)
    if problem:
        raise UnsafeRuntimeDir(problem)
    return target


def socket_problem(path: Path) -> str | None:
    """Why we must not talk to the socket at ``path`` (not a socket, not ours), or ``None``.

    Raises:
        FileNotFoundError: there is no socket (no app has listened here).
    """
    info = os.lstat(path)
    if not stat.S_ISSOCK(info.st_mode):
        return f"{path} is not a socket"
    uid = own_uid()
    if uid is not None and info.st_uid != uid:
        return f"{path} belongs to uid {info.st_uid}, not to you (uid {uid}): refusing to use it"
    return None


# -- peer credentials ---------------------------------------------------------------------------

_UCRED = struct.Struct("3i")  # Linux struct ucred: pid, uid, gid
_LOCAL_PEERCRED = 0x001  # macOS / BSD: struct xucred {u_int version; uid_t uid; ...}
_XUCRED_SIZE = 76


def peer_uid(sock: socket.socket) -> int | None:
    """The uid of the process at the other end of a connected Unix socket (``None`` if unknown)."""
    try:
        if hasattr(socket, "SO_PEERCRED"):
            raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size)
            return int(_UCRED.unpack(raw)[1])
        if sys.platform == "darwin" or "bsd" in sys.platform:
            raw = sock.getsockopt(0, _LOCAL_PEERCRED, _XUCRED_SIZE)
            return int(struct.unpack_from("=II", raw)[1])
    except (OSError, struct.error):
        return None
    return None


def peer_uid_of_fd(fd: int) -> int | None:
    """:func:`peer_uid` for a raw descriptor (a Qt socket's); the descriptor itself is left alone."""
    try:
        dup = socket.fromfd(fd, socket.AF_UNIX, socket.SOCK_STREAM)
    except (OSError, AttributeError):
        return None
    try:
        return peer_uid(dup)
    finally:
        dup.close()


def peer_is_authorized(peer: int | None, own: int | None = None) -> bool:
    """True only when the peer's uid is known and is ours."""
    mine = own_uid() if own is None else own
    return peer is not None and mine is not None and peer == mine


# -- messages -------------------------------------------------------------------------------------


def _clean_text(text: str, limit: int) -> str:
    """One line of printable text, at most ``limit`` characters."""
    flat = "".join(ch if ch.isprintable() else " " for ch in text).strip()
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _amount(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ProtocolError(f"{what} is not a number")
    amount = float(value)
    if not math.isfinite(amount) or amount < 0 or amount > 1e12:
        raise ProtocolError(f"{what} is not a plausible amount")
    return amount


def _text(doc: dict[str, Any], key: str, limit: int) -> str:
    value = doc.get(key)
    if not isinstance(value, str) or len(value) > limit:
        raise ProtocolError(f"{key} is missing or too long")
    return value


@dataclass(frozen=True)
class GateRequest:
    """An operation asks to spend ``estimate`` (in ``currency``) on a session."""

    id: str
    session_id: str
    root: str
    estimate: float
    operation: str = ""
    currency: str = "USD"
    reason: str = ""

    def to_json(self) -> dict[str, Any]:
        """The wire document."""
        doc: dict[str, Any] = {
            "v": PROTOCOL_VERSION,
            "id": self.id,
            "sessionId": self.session_id,
            "root": self.root,
            "estimate": self.estimate,
            "operation": self.operation,
            "currency": self.currency,
        }
        if self.reason:
            doc["reason"] = self.reason
        return doc


@dataclass(frozen=True)
class GateAnswer:
    """The app's answer to one request."""

    id: str
    answer: AnswerKind
    approved_up_to: float | None = None
    currency: str | None = None
    message: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The wire document."""
        doc: dict[str, Any] = {"v": PROTOCOL_VERSION, "id": self.id, "answer": self.answer}
        if self.approved_up_to is not None:
            doc["approvedUpTo"] = self.approved_up_to
        if self.currency is not None:
            doc["currency"] = self.currency
        if self.message:
            doc["message"] = self.message
        return doc


def encode(doc: dict[str, Any]) -> bytes:
    """One message: compact JSON (no raw newline can occur in it) and ``\\n``.

    Raises:
        FrameTooLarge: longer than ``MAX_MESSAGE_BYTES``.
        ValueError: not JSON-able (a NaN, say).
    """
    data = json.dumps(doc, separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode("ascii")
    if len(data) >= MAX_MESSAGE_BYTES:
        raise FrameTooLarge(f"message of {len(data)} bytes, the limit is {MAX_MESSAGE_BYTES}")
    return data + b"\n"


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number")


def _decode(line: bytes) -> dict[str, Any]:
    if len(line) > MAX_MESSAGE_BYTES:
        raise FrameTooLarge(f"message of {len(line)} bytes, the limit is {MAX_MESSAGE_BYTES}")
    try:
        doc = json.loads(line.decode("utf-8"), parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        raise ProtocolError(f"not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise ProtocolError("not a JSON object")
    if doc.get("v") != PROTOCOL_VERSION or isinstance(doc.get("v"), bool):
        raise ProtocolError(
            f"unsupported protocol version {doc.get('v')!r} (this side speaks {PROTOCOL_VERSION})"
        )
    return doc


def parse_request(line: bytes) -> GateRequest:
    """Check one request line.

    Raises:
        ProtocolError: anything not exactly a version-1 request.
    """
    doc = _decode(line)
    request_id = _text(doc, "id", MAX_ID_CHARS)
    session_id = _text(doc, "sessionId", 255)
    root = _text(doc, "root", 4096)
    if not request_id:
        raise ProtocolError("id is empty")
    if not safe_name(session_id) or session_id.startswith("."):
        raise ProtocolError("sessionId is not a plain name")
    if not os.path.isabs(root) or "\0" in root:
        raise ProtocolError("root is not an absolute path")
    operation = doc.get("operation", "")
    if not isinstance(operation, str) or len(operation) > 4 * MAX_OPERATION_CHARS:
        raise ProtocolError("operation is not a short text")
    reason = doc.get("reason", "")
    if not isinstance(reason, str) or len(reason) > 4 * MAX_OPERATION_CHARS:
        raise ProtocolError("reason is not a short text")
    currency = doc.get("currency", "USD")
    if currency not in CURRENCIES:
        raise ProtocolError(f"currency {currency!r} is not USD or EUR")
    return GateRequest(
        id=request_id,
        session_id=session_id,
        root=root,
        estimate=_amount(doc.get("estimate"), "estimate"),
        operation=_clean_text(operation, MAX_OPERATION_CHARS),
        currency=currency,
        reason=_clean_text(reason, MAX_OPERATION_CHARS),
    )


def parse_answer(line: bytes) -> GateAnswer:
    """Check one answer line.

    Raises:
        ProtocolError: anything not exactly a version-1 answer.
    """
    doc = _decode(line)
    request_id = _text(doc, "id", MAX_ID_CHARS)
    answer = doc.get("answer")
    if answer not in ("approved", "denied"):
        raise ProtocolError(f"answer {answer!r} is neither approved nor denied")
    up_to = doc.get("approvedUpTo")
    currency = doc.get("currency")
    message = doc.get("message")
    return GateAnswer(
        id=request_id,
        answer=answer,
        approved_up_to=None if up_to is None else _amount(up_to, "approvedUpTo"),
        currency=currency if currency in CURRENCIES else None,
        message=_clean_text(message, MAX_OPERATION_CHARS) if isinstance(message, str) else None,
    )


class FrameBuffer:
    """Collects bytes as they come and hands out complete lines; refuses a line over the limit."""

    def __init__(self, limit: int = MAX_MESSAGE_BYTES) -> None:
        self._limit = limit
        self._data = bytearray()

    @property
    def pending(self) -> int:
        """Bytes received that do not yet end a line."""
        return len(self._data)

    def room(self) -> int:
        """How many more bytes may arrive before a line is too long (read at most this much)."""
        return max(self._limit + 1 - len(self._data), 1)

    def feed(self, data: bytes) -> list[bytes]:
        """Add bytes; the complete non-blank lines they finish, without their ``\\n``.

        Raises:
            FrameTooLarge: a line (complete or not) is longer than the limit.
        """
        self._data += data
        lines: list[bytes] = []
        while (end := self._data.find(b"\n")) >= 0:
            line = bytes(self._data[:end])
            del self._data[: end + 1]
            if len(line) > self._limit:
                raise FrameTooLarge(f"a line of {len(line)} bytes, the limit is {self._limit}")
            if line.strip():
                lines.append(line)
        if len(self._data) > self._limit:
            raise FrameTooLarge(f"more than {self._limit} bytes without a line end")
        return lines


# -- the client -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """What asking gave: the result, a sentence for people, and what the user approved."""

    result: AskResult
    message: str
    approved_up_to: float | None = None
    currency: str | None = None


def new_request(
    session_id: str,
    root: Path | str,
    estimate: float,
    operation: str = "",
    currency: str = "USD",
    reason: str = "",
) -> GateRequest:
    """A request with a fresh id (the root made absolute, the texts cleaned)."""
    return GateRequest(
        id=uuid.uuid4().hex,
        session_id=session_id,
        root=os.path.abspath(os.fspath(root)),
        estimate=float(estimate),
        operation=_clean_text(operation, MAX_OPERATION_CHARS),
        currency=currency,
        reason=_clean_text(reason, MAX_OPERATION_CHARS),
    )


def _no_app(message: str) -> Outcome:
    return Outcome("no-app", message)


def _connect(path: Path, deadline: float) -> socket.socket | Outcome:
    """A connection to the app's socket after every check, or the outcome that stops us."""
    if not hasattr(socket, "AF_UNIX"):
        return _no_app("local sockets are not available on this platform")
    folder_problem = runtime_dir_problem(path.parent)
    if folder_problem is not None:
        if not path.parent.exists():
            return _no_app("no mity-cost app is running (its socket folder does not exist)")
        return _no_app(f"refusing the confirmation socket: {folder_problem}")
    try:
        problem = socket_problem(path)
    except FileNotFoundError:
        return _no_app("no mity-cost app is running (no confirmation socket)")
    except OSError as exc:
        return _no_app(f"cannot check {path}: {exc.strerror or exc}")
    if problem is not None:
        return _no_app(f"refusing the confirmation socket: {problem}")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(max(deadline - time.monotonic(), 0.001))
        sock.connect(os.fspath(path))
    except (FileNotFoundError, ConnectionRefusedError):
        sock.close()
        return _no_app("no mity-cost app is running (the socket is left over from a previous run)")
    except TimeoutError:
        sock.close()
        return Outcome("timeout", "the mity-cost app did not accept the connection in time")
    except OSError as exc:
        sock.close()
        return _no_app(f"cannot reach the mity-cost app: {exc.strerror or exc}")
    server = peer_uid(sock)
    if server is not None and not peer_is_authorized(server):
        sock.close()
        return _no_app(f"refusing the confirmation socket: it is served by uid {server}, not by you")
    return sock


def _exchange(sock: socket.socket, request: GateRequest, deadline: float) -> Outcome:
    """Send the request and wait for its answer until the deadline."""
    try:
        sock.settimeout(max(deadline - time.monotonic(), 0.001))
        sock.sendall(encode(request.to_json()))
        frames = FrameBuffer()
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            sock.settimeout(remaining)
            chunk = sock.recv(4096)
            if not chunk:
                return _no_app("the mity-cost app closed the connection without answering")
            for line in frames.feed(chunk):
                answer = parse_answer(line)
                if answer.id != request.id:
                    continue
                return Outcome(
                    answer.answer,
                    answer.message or ("approved by the user" if answer.answer == "approved" else "denied"),
                    answer.approved_up_to,
                    answer.currency,
                )
    except TimeoutError:
        return Outcome("timeout", "no answer from the mity-cost app in time")
    except ProtocolError as exc:
        return _no_app(f"the mity-cost app sent an answer we cannot read ({exc})")
    except OSError as exc:
        return _no_app(f"the connection to the mity-cost app failed: {exc.strerror or exc}")


def ask_detailed(
    session_id: str,
    root: Path | str,
    estimate: float,
    operation: str = "",
    timeout: float = DEFAULT_TIMEOUT,
    *,
    currency: str = "USD",
    reason: str = "",
    path: Path | None = None,
) -> Outcome:
    """Ask the running app to approve ``estimate`` more on a session; wait at most ``timeout`` seconds.

    ``reason`` says why the gate asks although the threshold would allow it (a budget); the app then
    always puts the question to the user.

    Never raises for anything the other side does: every failure is ``no-app`` or ``timeout``,
    which callers treat as "no".

    Raises:
        ValueError: ``estimate`` is negative or not finite (a caller's mistake).
    """
    if not math.isfinite(estimate) or estimate < 0:
        raise ValueError(f"estimate must be a finite amount >= 0, not {estimate!r}")
    deadline = time.monotonic() + max(timeout, 0.0)
    request = new_request(session_id, root, estimate, operation, currency, reason)
    connected = _connect(path or socket_path(), deadline)
    if isinstance(connected, Outcome):
        return connected
    with connected:
        return _exchange(connected, request, deadline)


def ask(
    session_id: str,
    root: Path | str,
    estimate: float,
    operation: str = "",
    timeout: float = DEFAULT_TIMEOUT,
    *,
    currency: str = "USD",
    reason: str = "",
    path: Path | None = None,
) -> AskResult:
    """``"approved"``, ``"denied"``, ``"timeout"`` or ``"no-app"`` (see :func:`ask_detailed`)."""
    outcome = ask_detailed(
        session_id, root, estimate, operation, timeout, currency=currency, reason=reason, path=path
    )
    return outcome.result
