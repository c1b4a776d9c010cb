"""What every ``ksim`` command shares: usage errors, output files, stdout, signals.

* **Errors** are one line, ``ksim COMMAND: message``, exit status 2 for bad usage; a value the
  user typed is echoed clipped (:func:`shown`), so a 3 MB argument is not printed back.
* **Output files** (``--json``, ``--trace``, ``--junit``) are checked before anything runs
  (:func:`prepare_output`: missing parent folders are created, as pytest does for
  ``--junitxml``; a folder or an unwritable place is a usage error) and written atomically
  (:func:`write_atomic`: a temporary file in the same folder, then a rename), so a failure never
  leaves half a report or destroys the previous one.
* **stdout may close early** (``ksim stress | head -1``): :class:`Stdout` stops writing then,
  and the command still ends with the status of what it found; a closed pipe never turns a
  failure into success.
* **Signals**: :func:`interruptible` turns SIGTERM into the same orderly stop as SIGINT (Ctrl-C),
  and remembers which one came, for the exit status 128 + signal number (130, 143).
* **Start-up**: the ``ksim`` script collects no cyclic garbage while it imports
  (:func:`pause_gc`, :func:`resume_gc`).
"""

from __future__ import annotations

import contextlib
import gc
import os
import signal
import sys
from collections.abc import Iterable, Iterator
from types import FrameType

__all__ = ["Stdout", "UsageError", "did_you_mean", "exit_status_for", "ignore_interrupts",
           "interruptible", "interrupts_ignored", "is_interrupt", "one_line", "pause_gc",
           "prepare_output", "resume_gc", "shown", "write_atomic"]

SHOWN_LIMIT = 60
LINE_LIMIT = 400


class UsageError(Exception):
    """Bad input from the user: printed as one line, exit status 2."""


def shown(value: object, limit: int = SHOWN_LIMIT) -> str:
    """``repr(value)``, clipped to about ``limit`` characters with the length said."""
    text = repr(value)
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text)} characters)"


def one_line(message: str, limit: int = LINE_LIMIT) -> str:
    """The message on one line of at most about ``limit`` characters (the head and the tail,
    which is where a message says what is expected)."""
    message = " ".join(message.split("\n"))
    if len(message) <= limit:
        return message
    keep = limit // 2
    return f"{message[:keep]} ...({len(message) - 2 * keep} characters)... {message[-keep:]}"


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """``"; did you mean 'x'?"`` for the closest choice, or ``""``."""
    import difflib  # only when there is a mistake to explain
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


# -- output files ---------------------------------------------------------------------------
def prepare_output(path: str, option: str, command: str) -> str:
    """Check that ``path`` can be written, before the run: create its missing parent folders,
    refuse a folder or a place that cannot be written.  Returns the absolute path."""
    import tempfile
    where = f"ksim {command}: {option} {shown(path)}"
    if not path:
        raise UsageError(f"{where}: expected a file name")
    full = os.path.abspath(path)
    if os.path.isdir(full):
        raise UsageError(f"{where}: is a folder; give a file name in it")
    folder = os.path.dirname(full)
    existing = folder
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise UsageError(f"{where}: {shown(existing)} is a file, not a folder")
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"{where}: cannot create the folder {shown(folder)}: "
                         f"{exc.strerror}") from None
    try:
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".ksim-", suffix=".tmp")
    except OSError as exc:
        raise UsageError(f"{where}: cannot write in {shown(folder)}: {exc.strerror}") from None
    os.close(fd)
    os.unlink(probe)
    return full


def write_atomic(path: str, data: str | bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename: readers see the old
    file or the new one, never half of one."""
    import tempfile
    folder = os.path.dirname(os.path.abspath(path))
    fd, temp = tempfile.mkstemp(dir=folder, prefix=".ksim-", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
        os.chmod(temp, 0o666 & ~_umask())
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# -- stdout ---------------------------------------------------------------------------------
class Stdout:
    """stdout that may be closed by the reader: the first ``BrokenPipeError`` makes every later
    write a no-op (and points the descriptor at /dev/null so the interpreter's final flush is
    quiet); ``closed`` says it happened."""

    closed = False

    @classmethod
    def write(cls, data: str | bytes) -> None:
        if cls.closed:
            return
        try:
            if isinstance(data, bytes):
                sys.stdout.buffer.write(data)
            else:
                sys.stdout.write(data)
            sys.stdout.flush()
        except BrokenPipeError:
            cls.close()

    @classmethod
    def close(cls) -> None:
        cls.closed = True
        with contextlib.suppress(OSError, ValueError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)

    @classmethod
    def guard(cls) -> contextlib.AbstractContextManager[None]:
        """A block whose stdout writes (rich's too) may meet a closed pipe."""
        return _guard()


@contextlib.contextmanager
def _guard() -> Iterator[None]:
    try:
        yield
    except BrokenPipeError:
        Stdout.close()


# -- signals --------------------------------------------------------------------------------
class _Received:
    signum: int | None = None


@contextlib.contextmanager
def interruptible() -> Iterator[_Received]:
    """SIGTERM stops the block as SIGINT does (a ``KeyboardInterrupt``, raised where trio or
    Python raise it safely); the holder says which signal came first."""
    received = _Received()

    def on_term(signum: int, frame: FrameType | None) -> None:
        if received.signum is None:
            received.signum = signum
        signal.raise_signal(signal.SIGINT)

    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        yield received
    finally:
        signal.signal(signal.SIGTERM, previous)


def is_interrupt(exc: BaseException) -> bool:
    """A KeyboardInterrupt, bare or inside trio's exception groups."""
    if isinstance(exc, KeyboardInterrupt):
        return True
    if isinstance(exc, BaseExceptionGroup):
        return exc.subgroup(KeyboardInterrupt) is not None
    return False


def exit_status_for(signum: int) -> int:
    """The shell's convention: 128 + the signal number (SIGINT 130, SIGTERM 143)."""
    return 128 + signum


@contextlib.contextmanager
def interrupts_ignored() -> Iterator[None]:
    """A block that a second Ctrl-C must not cut short (reaping the workers)."""
    previous = (signal.signal(signal.SIGINT, signal.SIG_IGN),
                signal.signal(signal.SIGTERM, signal.SIG_IGN))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous[0])
        signal.signal(signal.SIGTERM, previous[1])


def ignore_interrupts() -> None:
    """From here on SIGINT and SIGTERM wait: the stop already under way must finish (write the
    partial report, reap the workers) rather than die half-way at a second Ctrl-C."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


# -- start-up -------------------------------------------------------------------------------
class _Collector:
    paused = False


def pause_gc() -> None:
    """No cyclic garbage collection until :func:`resume_gc`: the ``ksim`` script's imports
    (trio, the kernel's modules) create tens of thousands of objects that live as long as the
    process and no garbage worth collecting, and the collector would scan them again and again
    (a tenth of ``ksim boot``'s CPU time)."""
    if gc.isenabled():
        gc.disable()
        _Collector.paused = True


def resume_gc() -> None:
    """The command has imported what it runs: collect again, as always.  What the imports
    made is set aside first (``gc.freeze``), so no collection scans it; nothing else changes.
    A no-op unless :func:`pause_gc` paused the collector (``ksim.cli.main`` called from
    Python leaves its caller's collector alone)."""
    if _Collector.paused:
        _Collector.paused = False
        gc.freeze()
        gc.enable()
