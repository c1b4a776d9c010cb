"""procfs, sysfs and /dev nodes: the files through which a kernel is observed (fs/proc, fs/sysfs).

ksim has no block devices or real files; it has the kernel's *synthetic* files, each an
entry with a mode and read/write handlers.  The mode is enforced the way kernfs and procfs
enforce it: a file without write bits cannot be opened for writing, not even by root (P18).
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable

import attrs

from ksim.current import current_kernel
from ksim.errno import EACCES, EINVAL, ENOENT, EPERM, KernelError
from ksim.init import require_async

ReadFn = Callable[["ProcFile", int, int], Awaitable[bytes]]
WriteFn = Callable[["ProcFile", bytes], Awaitable[int]]
UnlinkFn = Callable[["ProcFile"], Awaitable[int]]


@attrs.define(eq=False)
class ProcOps:
    """``struct proc_ops``: ``proc_read(file, count, pos)`` returns up to ``count`` bytes at
    ``pos``; ``proc_write(file, data)`` returns the bytes consumed or a negative errno.
    ``unlink(file)`` is the directory's ``->unlink`` for this file (pstore's erase): 0 and
    the file goes, or a negative errno and it stays; without it the file cannot be removed
    (-EPERM, as procfs and sysfs refuse ``rm``).

    All are ``async def`` (they run driver code); a file whose handlers are not is refused
    when it is created.
    """

    proc_read: ReadFn | None = None
    proc_write: WriteFn | None = None
    unlink: UnlinkFn | None = None


@attrs.define(eq=False)
class ProcFile:
    """One synthetic file (a ``proc_dir_entry`` or a sysfs attribute)."""

    path: str
    mode: int
    ops: ProcOps
    data: object = None
    owner: str | None = None
    # The module whose init created this /proc file (stress readers read those files).
    owner_module: str | None = None


def text_reader(render: Callable[[], str | bytes | Awaitable[str | bytes]]) -> ProcOps:
    """Ops for a read-only file whose whole content is rendered on each read (seq_file style)."""

    async def proc_read(file: ProcFile, count: int, pos: int) -> bytes:
        content = render()
        if inspect.isawaitable(content):
            content = await content
        data = content.encode() if isinstance(content, str) else content
        return data[pos:pos + count]

    return ProcOps(proc_read=proc_read)


class VFS:
    """The namespace of synthetic files of one kernel."""

    def __init__(self) -> None:
        self._files: dict[str, ProcFile] = {}

    def create(self, path: str, mode: int, ops: ProcOps, data: object = None,
               owner: str | None = None) -> ProcFile | None:
        """Add a file; returns None if the path exists (as proc_create fails on a duplicate)."""
        if path in self._files:
            return None
        for handler in (ops.proc_read, ops.proc_write, ops.unlink):
            if handler is not None:
                require_async(handler, f"the handler of {path}")
        entry = ProcFile(path, mode, ops, data, owner)
        self._files[path] = entry
        return entry

    def remove(self, path: str) -> None:
        self._files.pop(path, None)

    def remove_owned(self, owner: str) -> None:
        for path in [p for p, f in self._files.items() if f.owner == owner]:
            del self._files[path]

    def lookup(self, path: str) -> ProcFile:
        entry = self._files.get(path.rstrip("/") or "/")
        if entry is None:
            raise KernelError(ENOENT, f"{path}: No such file or directory")
        return entry

    def exists(self, path: str) -> bool:
        return path in self._files

    def listdir(self, path: str) -> list[str]:
        prefix = path.rstrip("/") + "/"
        names = {p[len(prefix):].split("/", 1)[0] for p in self._files if p.startswith(prefix)}
        return sorted(names)

    async def read(self, path: str, pos: int = 0, count: int | None = None) -> bytes:
        """``count`` given: one ``read(2)`` of that many bytes at ``pos`` (one handler call, so
        one consistent snapshot).  ``count`` None: read like ``cat``, page by page to EOF —
        a file that changes between the calls reads torn, as it would on Linux."""
        entry = self.lookup(path)
        if not entry.mode & 0o444 or entry.ops.proc_read is None:
            raise KernelError(EACCES, f"{path}: Permission denied")
        if pos < 0 or (count is not None and count < 0):
            raise KernelError(EINVAL, f"{path}: Invalid argument")
        if count is not None:
            return bytes(await self._read_once(entry, count, pos))
        out = bytearray()
        while True:
            data = await self._read_once(entry, 4096, pos)
            if not data:
                return bytes(out)
            out += data
            pos += len(data)

    @staticmethod
    async def _read_once(entry: ProcFile, count: int, pos: int) -> bytes:
        assert entry.ops.proc_read is not None
        return await entry.ops.proc_read(entry, count, pos)

    async def write(self, path: str, data: bytes) -> int:
        entry = self.lookup(path)
        if not entry.mode & 0o222 or entry.ops.proc_write is None:
            raise KernelError(EACCES, f"{path}: Permission denied")
        result = await entry.ops.proc_write(entry, data)
        if result < 0:
            raise KernelError(result, f"{path}: write failed")
        return result

    async def unlink(self, path: str) -> None:
        """``unlink(2)``: the file's ``unlink`` handler decides; the entry goes if it says 0."""
        entry = self.lookup(path)
        if entry.ops.unlink is None:
            raise KernelError(EPERM, f"{path}: Operation not permitted")
        result = await entry.ops.unlink(entry)
        if result < 0:
            raise KernelError(result, f"{path}: unlink failed")
        if self._files.get(entry.path) is entry:
            del self._files[entry.path]

    def paths(self) -> list[str]:
        return sorted(self._files)


# -- the driver-facing procfs API -------------------------------------------------------------

def _proc_path(name: str, parent: str | None) -> str:
    return "/proc/%s/%s" % (parent.strip("/").removeprefix("proc/"), name) if parent \
        else "/proc/" + name


def proc_create(name: str, mode: int, parent: str | None, proc_ops: ProcOps,
                data: object = None) -> ProcFile | None:
    """``proc_create(name, mode, parent, proc_ops)``; None if the name is taken."""
    kernel = current_kernel()
    entry = kernel.vfs.create(_proc_path(name, parent), mode, proc_ops, data)
    if entry is not None:
        entry.owner_module = kernel.module.loading
    return entry


def remove_proc_entry(name: str, parent: str | None) -> None:
    current_kernel().vfs.remove(_proc_path(name, parent))
