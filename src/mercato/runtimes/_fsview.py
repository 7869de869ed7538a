"""What the guest sees of file metadata: a function of the job, never of the host.

wasmtime's WASI answers ``fd_filestat_get``/``path_filestat_get`` and ``fd_readdir`` from the
host file system, and several fields are the host's own: ``st_ino``/``d_ino`` (a 64-bit hash
of the host inode, so a fresh workspace gets fresh random-looking numbers), ``atime`` and
``ctime`` (real host times), the ``mtime`` of anything the guest wrote (the host clock), the
size and link count of folders (file-system dependent) and the order of directory entries
(the host file system's hash order). Any of them changes the guest's work: CPython builds a
``PyLong`` for ``st_ino`` whose digit count depends on the value, so a job's fuel differed by
a few dozen units between processes, and listing order changes whole computations.

The shims here call wasmtime's real functions through a tiny adapter instance (its own memory
in the same store, so the same WASI context and file descriptors), then rewrite the answer:

- ``ino``: numbered 1, 2, 3… in order of first sight of each host (device, inode) pair within the run (0 stays 0); ``dev`` is 1;
- ``mtime``: kept if it is before the run started (staged files carry ``FIXED_MTIME``; times
  the guest set itself are virtual-clock times), otherwise ``FIXED_MTIME`` (the host clock
  stamped it); ``atime`` and ``ctime`` equal ``mtime``;
- folders: size 0, one link;
- ``fd_readdir``: entries sorted by name bytes, cookies are positions in that order;
- ``*_set_times`` with the ``NOW`` flags: the virtual wall clock's "now" is written instead.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Callable

import wasmtime as wt

from mercato.runtimes import _engine
from mercato.runtimes.base import FIXED_MTIME

__all__ = ["FileView", "define"]

WASI = "wasi_snapshot_preview1"
FIXED_NS = FIXED_MTIME * 10**9
HOST_CLOCK_SLACK_NS = 2 * 10**9  # file-system timestamps may lag the clock we read
ESUCCESS, EFAULT, ENAMETOOLONG = 0, 21, 37
FILETYPE_DIRECTORY = 3
FST_ATIM, FST_ATIM_NOW, FST_MTIM, FST_MTIM_NOW = 1, 2, 4, 8
_FILESTAT = struct.Struct("<QQB7xQQQQQ")  # dev, ino, filetype, nlink, size, atim, mtim, ctim
_DIRENT = struct.Struct("<QQIB3x")  # d_next, d_ino, d_namlen, d_type; the name follows

# Adapter memory: [0, 64) a filestat, [64, 72) bufused, [PATH_AT, +PATH_MAX) a path,
# [DIR_AT, +DIR_LEN) a readdir buffer.
PATH_AT, PATH_MAX = 1024, 1 << 16
DIR_AT, DIR_LEN = 1 << 17, 1 << 16
_ADAPTER_WAT = f"""
(module
  (import "{WASI}" "fd_filestat_get" (func $fd_filestat_get (param i32 i32) (result i32)))
  (import "{WASI}" "path_filestat_get" (func $path_filestat_get (param i32 i32 i32 i32 i32) (result i32)))
  (import "{WASI}" "fd_readdir" (func $fd_readdir (param i32 i32 i32 i64 i32) (result i32)))
  (import "{WASI}" "fd_filestat_set_times" (func $fd_set_times (param i32 i64 i64 i32) (result i32)))
  (import "{WASI}" "path_filestat_set_times"
    (func $path_set_times (param i32 i32 i32 i32 i64 i64 i32) (result i32)))
  (memory (export "memory") 3 3)
  (func (export "fd_filestat_get") (param $fd i32) (result i32)
    (call $fd_filestat_get (local.get $fd) (i32.const 0)))
  (func (export "path_filestat_get") (param $fd i32) (param $flags i32) (param $len i32) (result i32)
    (call $path_filestat_get (local.get $fd) (local.get $flags) (i32.const {PATH_AT}) (local.get $len) (i32.const 0)))
  (func (export "fd_readdir") (param $fd i32) (param $cookie i64) (result i32)
    (call $fd_readdir (local.get $fd) (i32.const {DIR_AT}) (i32.const {DIR_LEN}) (local.get $cookie) (i32.const 64)))
  (func (export "fd_filestat_set_times") (param i32 i64 i64 i32) (result i32)
    (call $fd_set_times (local.get 0) (local.get 1) (local.get 2) (local.get 3)))
  (func (export "path_filestat_set_times") (param i32 i32 i32 i64 i64 i32) (result i32)
    (call $path_set_times (local.get 0) (local.get 1) (i32.const {PATH_AT}) (local.get 2)
      (local.get 3) (local.get 4) (local.get 5)))
)
"""
_I32, _I64 = wt.ValType.i32(), wt.ValType.i64()
_adapter_module: wt.Module | None = None


def _adapter() -> wt.Module:
    global _adapter_module
    if _adapter_module is None:
        _adapter_module = wt.Module(_engine.engine(), _ADAPTER_WAT)
    return _adapter_module


class FileView:
    """One run's rewriting of file metadata (see the module docstring)."""

    def __init__(self, now_realtime_ns: Callable[[wt.Caller], int]) -> None:
        self._now = now_realtime_ns
        self._inos: dict[tuple[int, int], int] = {}
        self._listings: dict[int, list[tuple[bytes, int, int, int]]] = {}
        self.host_start_ns = time.time_ns() - HOST_CLOCK_SLACK_NS
        self._exports: dict[str, wt.Func] = {}
        self._memory: wt.Memory | None = None

    def attach(self, store: wt.Store) -> None:
        """Instantiate the adapter in ``store`` against wasmtime's own WASI functions."""
        linker = wt.Linker(_engine.engine())
        linker.define_wasi()
        inst = linker.instantiate(store, _adapter())
        exports = inst.exports(store)
        mem = exports["memory"]
        assert isinstance(mem, wt.Memory)
        self._memory = mem
        for name in ("fd_filestat_get", "path_filestat_get", "fd_readdir", "fd_filestat_set_times", "path_filestat_set_times"):
            f = exports[name]
            assert isinstance(f, wt.Func)
            self._exports[name] = f

    # -- rewriting ---------------------------------------------------------------------------

    def ino(self, dev: int, host: int) -> int:
        """The run's number for host inode ``host`` on device ``dev`` (inode numbers repeat across
        file systems, e.g. a tmpfs workspace and a cache on another mount: the pair is the key)."""
        if host == 0:
            return 0
        n = self._inos.get((dev, host))
        if n is None:
            n = self._inos[(dev, host)] = len(self._inos) + 1
        return n

    def filestat(self, raw: bytes) -> bytes:
        dev, ino, ftype, nlink, size, _atim, mtim, _ctim = _FILESTAT.unpack(raw)
        if mtim >= self.host_start_ns:
            mtim = FIXED_NS
        if ftype == FILETYPE_DIRECTORY:
            nlink, size = 1, 0
        return _FILESTAT.pack(1, self.ino(dev, ino), ftype, nlink, size, mtim, mtim, mtim)

    # -- the shims ---------------------------------------------------------------------------

    def _mem_read(self, caller: wt.Caller, ptr: int, n: int) -> bytes:
        assert self._memory is not None
        return bytes(self._memory.read(caller, ptr, ptr + n))

    def _mem_write(self, caller: wt.Caller, data: bytes, ptr: int) -> None:
        assert self._memory is not None
        self._memory.write(caller, data, ptr)

    def _stage_path(self, caller: wt.Caller, ptr: int, n: int) -> int:
        """Copy the guest's path into the adapter; an errno, or 0."""
        if n > PATH_MAX:
            return ENAMETOOLONG
        data = read_guest(caller, ptr, n)
        if data is None:
            return EFAULT
        self._mem_write(caller, data, PATH_AT)
        return ESUCCESS

    def fd_filestat_get(self, caller: wt.Caller, fd: int, buf: int) -> int:
        err = self._exports["fd_filestat_get"](caller, fd)
        if err:
            return err
        return write_guest(caller, buf & 0xFFFFFFFF, self.filestat(self._mem_read(caller, 0, _FILESTAT.size)))

    def path_filestat_get(self, caller: wt.Caller, fd: int, flags: int, path: int, path_len: int, buf: int) -> int:
        path_len &= 0xFFFFFFFF
        err = self._stage_path(caller, path & 0xFFFFFFFF, path_len)
        if err:
            return err
        err = self._exports["path_filestat_get"](caller, fd, flags, path_len)
        if err:
            return err
        return write_guest(caller, buf & 0xFFFFFFFF, self.filestat(self._mem_read(caller, 0, _FILESTAT.size)))

    def _set_times(self, caller: wt.Caller, atim: int, mtim: int, fst: int) -> tuple[int, int, int]:
        if fst & (FST_ATIM_NOW | FST_MTIM_NOW):
            now = self._now(caller)
            if fst & FST_ATIM_NOW:
                atim, fst = now, (fst & ~FST_ATIM_NOW) | FST_ATIM
            if fst & FST_MTIM_NOW:
                mtim, fst = now, (fst & ~FST_MTIM_NOW) | FST_MTIM
        return atim, mtim, fst

    def fd_filestat_set_times(self, caller: wt.Caller, fd: int, atim: int, mtim: int, fst: int) -> int:
        atim, mtim, fst = self._set_times(caller, atim & (2**64 - 1), mtim & (2**64 - 1), fst)
        return self._exports["fd_filestat_set_times"](caller, fd, _i64(atim), _i64(mtim), fst)

    def path_filestat_set_times(
        self, caller: wt.Caller, fd: int, flags: int, path: int, path_len: int, atim: int, mtim: int, fst: int
    ) -> int:
        path_len &= 0xFFFFFFFF
        err = self._stage_path(caller, path & 0xFFFFFFFF, path_len)
        if err:
            return err
        atim, mtim, fst = self._set_times(caller, atim & (2**64 - 1), mtim & (2**64 - 1), fst)
        return self._exports["path_filestat_set_times"](caller, fd, flags, path_len, _i64(atim), _i64(mtim), fst)

    def _listing(self, caller: wt.Caller, fd: int) -> list[tuple[bytes, int, int, int]] | int:
        """Every entry of ``fd`` as (name, d_ino, d_type, dev), sorted by name; or an errno. ``dev``
        is the directory's device (an entry's inode is only unique together with it)."""
        err = self._exports["fd_filestat_get"](caller, fd)
        dev = 0 if err else _FILESTAT.unpack(self._mem_read(caller, 0, _FILESTAT.size))[0]
        entries: list[tuple[bytes, int, int, int]] = []
        cookie = 0
        while True:
            err = self._exports["fd_readdir"](caller, fd, cookie)
            if err:
                return err
            used = int.from_bytes(self._mem_read(caller, 64, 4), "little")
            raw = self._mem_read(caller, DIR_AT, used)
            pos, last_next = 0, None
            while pos + _DIRENT.size <= used:
                d_next, d_ino, namlen, d_type = _DIRENT.unpack_from(raw, pos)
                end = pos + _DIRENT.size + namlen
                if end > used:
                    break  # truncated: read again from its cookie
                entries.append((raw[pos + _DIRENT.size : end], d_ino, d_type, dev))
                last_next, pos = d_next, end
            if used < DIR_LEN:
                break
            if last_next is None:
                return ENAMETOOLONG  # one entry larger than the whole buffer
            cookie = last_next
        entries.sort(key=lambda e: e[0])
        return entries

    def fd_readdir(self, caller: wt.Caller, fd: int, buf: int, buf_len: int, cookie: int, bufused: int) -> int:
        buf, buf_len, bufused = buf & 0xFFFFFFFF, buf_len & 0xFFFFFFFF, bufused & 0xFFFFFFFF
        cookie &= 2**64 - 1
        entries = self._listings.get(fd) if cookie else None
        if entries is None:  # a listing is read whole at cookie 0 and served from there
            got = self._listing(caller, fd)
            if isinstance(got, int):
                return got
            entries = self._listings[fd] = got
        out = bytearray()
        for i in range(min(cookie, len(entries)), len(entries)):
            name, d_ino, d_type, dev = entries[i]
            out += _DIRENT.pack(i + 1, self.ino(dev, d_ino), len(name), d_type) + name
            if len(out) >= buf_len:
                break
        data = bytes(out[:buf_len])
        err = write_guest(caller, buf, data)
        return err or write_guest(caller, bufused, len(data).to_bytes(4, "little"))


def _i64(v: int) -> int:
    """An unsigned 64-bit value as the signed i64 wasmtime-py expects."""
    return v - 2**64 if v >= 2**63 else v


def write_guest(caller: wt.Caller, ptr: int, data: bytes) -> int:
    """Copy ``data`` into the guest's memory at ``ptr``: ESUCCESS, or EFAULT out of bounds."""
    mem = caller.get("memory")
    if not isinstance(mem, wt.Memory) or ptr < 0 or ptr + len(data) > mem.data_len(caller):
        return EFAULT
    mem.write(caller, data, ptr)
    return ESUCCESS


def read_guest(caller: wt.Caller, ptr: int, n: int) -> bytes | None:
    """``n`` bytes of the guest's memory at ``ptr``, or None out of bounds."""
    mem = caller.get("memory")
    if not isinstance(mem, wt.Memory) or ptr < 0 or ptr + n > mem.data_len(caller):
        return None
    return bytes(mem.read(caller, ptr, ptr + n))


def define(linker: wt.Linker, view: FileView) -> None:
    """Shadow wasmtime's metadata functions in ``linker`` with ``view``'s."""
    linker.allow_shadowing = True
    sigs: list[tuple[str, list[wt.ValType], Callable[..., int]]] = [
        ("fd_filestat_get", [_I32, _I32], view.fd_filestat_get),
        ("path_filestat_get", [_I32] * 5, view.path_filestat_get),
        ("fd_readdir", [_I32, _I32, _I32, _I64, _I32], view.fd_readdir),
        ("fd_filestat_set_times", [_I32, _I64, _I64, _I32], view.fd_filestat_set_times),
        ("path_filestat_set_times", [_I32] * 4 + [_I64, _I64, _I32], view.path_filestat_set_times),
    ]
    for name, params, fn in sigs:
        linker.define_func(WASI, name, wt.FuncType(params, [_I32]), fn, True)
