"""The SQLite writer in a child process, with its own GIL.

Ingest's inserts are most of the service's CPU after the event loop itself;
in a thread they fight the loop for one GIL, and the loop loses every time
sqlite3 hands the GIL back between statement steps.  So the EventStore can
run them here instead: a child process that the EventStore starts, feeds over
a pipe, and stops with itself.

The protocol is request and reply, one group at a time, each a frame
(``>IB``: payload length, job code; then the payload in MessagePack):

- the parent sends one group of items of one kind of job (:data:`REMOTE_JOBS`,
  for now ingest's ``insert_batches``): the validated batches as bytes, not
  Python objects;
- the child runs them in one transaction (``_transaction.run_group``: the same
  savepoints and fall-backs as the in-process writer), COMMITs, and only then
  replies with one ``[ok, value]`` per item: the result, or the error's class
  name and message.

The child ignores SIGINT and SIGTERM (a terminal's Ctrl-C reaches the whole
process group; the parent drains and then closes the pipe) and exits when its
stdin ends, which is also what happens when the parent dies, however it
dies (the kernel closes the pipe): the writer never outlives the service.
Not ``PR_SET_PDEATHSIG``: that signal follows the *thread* that started the
child, and trio starts processes from a worker thread, which it retires when
idle: the writer was killed 10 s into a benchmark.

It runs as ``python -m tippen_rt.persist._writer_main DB_PATH``.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import sqlite3
import struct
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import msgspec
import trio

from ..events import Batch
from ._events import InsertResult, insert_batches
from ._schema import connect
from ._transaction import Combined, Work, run_group

log = logging.getLogger(__name__)

_HEADER = struct.Struct(">IB")
#: Bytes the WAL file may keep after it starts over (journal_size_limit).
WAL_SIZE_LIMIT = 64 * 2**20
#: Job code of the child's first frame: it has the database open.
_READY = 0


class WriterLost(Exception):
    """The writer process died or stopped answering: what it held is not stored."""


@dataclass(frozen=True, slots=True)
class RemoteJob:
    """A combined job the writer process can run: how its items and results travel."""

    code: int
    fn: Combined[Any, Any]
    #: The type of one item, for msgspec's typed decoding in the child.
    item_type: Any
    #: Child side: a result as MessagePack-able values.
    result_out: Callable[[Any], Any]
    #: Parent side: those values as the result again.
    result_in: Callable[[Any], Any]


REMOTE_JOBS: tuple[RemoteJob, ...] = (
    RemoteJob(
        code=1,
        fn=insert_batches,
        item_type=tuple[int, Batch],
        result_out=lambda r: (r.stored, r.duplicate),
        result_in=lambda v: InsertResult(int(v[0]), bool(v[1])),
    ),
)
#: Remote jobs by their combined function (parent) and by code (child).
REMOTE_BY_FN: dict[Callable[..., Any], RemoteJob] = {j.fn: j for j in REMOTE_JOBS}
_REMOTE_BY_CODE = {j.code: j for j in REMOTE_JOBS}


def _frame(code: int, payload: bytes) -> bytes:
    return _HEADER.pack(len(payload), code) + payload


# ---- the parent's side ------------------------------------------------------------


class WriterProcess:
    """The parent's handle on one writer process. Start with :meth:`start`."""

    def __init__(self, process: trio.Process) -> None:
        self._process = process
        assert process.stdin is not None and process.stdout is not None
        self._stdin = process.stdin
        self._stdout = process.stdout
        self._buffer = bytearray()
        self._encoder = msgspec.msgpack.Encoder()

    @classmethod
    async def start(cls, path: Path) -> WriterProcess:
        """Start a writer on the database at ``path`` (migrated already) and wait
        until it has the file open.  Callers bound the wait with ``fail_after``."""
        process = await trio.lowlevel.open_process(
            [sys.executable, "-m", f"{__package__}._writer_main", str(path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        writer = cls(process)
        try:
            code, _ = await writer._receive_frame()
            if code != _READY:
                raise WriterLost(f"the writer process said {code} instead of ready")
        except BaseException:
            writer.kill()
            raise
        log.info("writer process %d started on %s", process.pid, path)
        return writer

    @property
    def pid(self) -> int:
        """The writer's process id."""
        return self._process.pid

    async def wait(self) -> int:
        """Wait until the process has ended; its exit status."""
        return await self._process.wait()

    @property
    def exited(self) -> bool:
        """True once the process has ended (between groups: nothing was lost)."""
        return self._process.poll() is not None

    async def run(self, job: RemoteJob, items: Sequence[Any]) -> list[tuple[bool, Any]]:
        """Have ``job.fn`` run on ``items`` in one transaction; return after COMMIT,
        one ``(ok, result or exception)`` per item.  :class:`WriterLost` if the
        process dies meanwhile (then nothing of the group can be trusted stored)."""
        payload = self._encoder.encode(items)
        try:
            await self._stdin.send_all(_frame(job.code, payload))
            code, reply = await self._receive_frame()
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
            raise WriterLost(f"the writer process is gone ({exc})") from None
        if code != job.code:
            raise WriterLost(f"the writer process answered job {code} for {job.code}")
        values = msgspec.msgpack.decode(reply)
        if len(values) != len(items):
            raise WriterLost(f"the writer answered {len(values)} results for {len(items)}")
        return [
            (True, job.result_in(value)) if ok else (False, _error(*value)) for ok, value in values
        ]

    async def _receive_frame(self) -> tuple[int, bytes]:
        buffer = self._buffer
        while True:
            if len(buffer) >= _HEADER.size:
                length, code = _HEADER.unpack_from(buffer)
                end = _HEADER.size + length
                if len(buffer) >= end:
                    payload = bytes(buffer[_HEADER.size : end])
                    del buffer[:end]
                    return code, payload
            chunk = await self._stdout.receive_some(1 << 20)
            if not chunk:
                returncode = self._process.poll()
                raise WriterLost(f"the writer process ended (exit status {returncode})")
            buffer += chunk

    async def aclose(self) -> None:
        """Close its stdin (it finishes the group it holds, closes the database and
        exits) and wait for it.  Callers bound the wait; cancelled, it is killed."""
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            await self._stdin.aclose()
        try:
            await self._process.wait()
        finally:
            self.kill()
            await self._stdout.aclose()
        log.info("writer process %d stopped (exit status %s)", self.pid, self._process.returncode)

    def kill(self) -> None:
        """Kill it now (SIGKILL); harmless if it has exited."""
        if self._process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self._process.kill()


def _error(name: str, message: str) -> BaseException:
    """The child's exception as the parent raises it: sqlite3's by name, else
    RuntimeError (the message says what it was)."""
    cls = getattr(sqlite3, name, None)
    if isinstance(cls, type) and issubclass(cls, sqlite3.Error):
        return cls(message)
    return RuntimeError(f"{name} in the writer process: {message}")


# ---- the child's side -------------------------------------------------------------


def _read_exactly(stream: IO[bytes], n: int) -> bytes | None:
    data = b""
    while len(data) < n:
        chunk = stream.read(n - len(data))
        if not chunk:
            return None
        data += chunk
    return data


class Checkpointer:
    """WAL checkpoints beside the writer, never inside one of its commits.

    With SQLite's automatic checkpoints, the commit that finds the WAL past
    1,000 pages copies it back into the database and syncs that file before
    it returns: every request of that group waits for it (commits of one
    batch took 60-400 ms then, on this machine's shared disk, with 1-2 ms of
    CPU).  Here the writer's connection has them off, and a thread of its own
    runs a PASSIVE checkpoint after commits, at most once per ``interval_s``:
    PASSIVE never blocks the writer (SQLite releases the GIL meanwhile), and
    the WAL starts over once a checkpoint has caught up.
    """

    def __init__(self, path: str, interval_s: float = 1.0) -> None:
        self._conn = connect(path)
        self._interval_s = interval_s
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="wal-checkpoint", daemon=True)
        self.checkpoints = 0

    def start(self) -> None:
        """Start the checkpointing thread."""
        self._thread.start()

    def nudge(self) -> None:
        """Something was committed: checkpoint soon."""
        self._wake.set()

    def stop(self) -> None:
        """Stop the thread and close its connection."""
        self._stopping.set()
        self._wake.set()
        self._thread.join()
        self._conn.close()

    def _run(self) -> None:
        while True:
            self._wake.wait()
            if self._stopping.is_set():
                return
            self._wake.clear()
            try:
                self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
                self.checkpoints += 1
            except sqlite3.Error:
                log.exception("WAL checkpoint failed; the next commit tries again")
            if self._stopping.wait(self._interval_s):
                return


def serve(
    conn: sqlite3.Connection,
    requests: IO[bytes],
    replies: IO[bytes],
    committed: Callable[[], None] = lambda: None,
) -> None:
    """Answer groups from ``requests`` until it ends (the child's main loop);
    ``committed`` is called after each reply."""
    decoders = {
        code: msgspec.msgpack.Decoder(list[job.item_type])  # type: ignore[name-defined]
        for code, job in _REMOTE_BY_CODE.items()
    }
    encoder = msgspec.msgpack.Encoder()
    replies.write(_frame(_READY, b""))
    replies.flush()
    while True:
        header = _read_exactly(requests, _HEADER.size)
        if header is None:
            return
        length, code = _HEADER.unpack(header)
        payload = _read_exactly(requests, length)
        if payload is None:
            return
        job = _REMOTE_BY_CODE[code]
        jobs = [Work(None, job.fn, item) for item in decoders[code].decode(payload)]
        run_group(conn, jobs)
        out = [
            (False, (type(w.error).__name__, str(w.error)))
            if w.error is not None
            else (True, job.result_out(w.result))
            for w in jobs
        ]
        replies.write(_frame(code, encoder.encode(out)))
        replies.flush()
        committed()


def main(argv: Sequence[str]) -> int:
    """The writer process's entry point (``_writer_main``): serve ``argv[0]``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s writer[%(process)d] %(levelname)s %(message)s"
    )
    conn = connect(argv[0])
    conn.execute("PRAGMA wal_autocheckpoint = 0")  # the Checkpointer's job
    # The WAL starts over after each checkpoint but keeps its largest size;
    # beyond this it is cut back when it starts over.
    conn.execute(f"PRAGMA journal_size_limit = {WAL_SIZE_LIMIT}")
    checkpointer = Checkpointer(argv[0])
    checkpointer.start()
    try:
        serve(conn, sys.stdin.buffer, sys.stdout.buffer, checkpointer.nudge)
    finally:
        checkpointer.stop()
        conn.close()
    return 0
