"""Files that exist whole or not at all, the readers that go with them, and a directory lock.

Every writer here goes through `atomic_path`: the content is written to a temporary sibling,
flushed to disk, and renamed into place, so a reader (or a resumed run after kill -9) sees
the old file or the new one, never half of one. A directory that already exists is replaced
by `replace_dir`, which swaps the two in one system call where the OS has one (Linux
renameat2 RENAME_EXCHANGE), so that there is no moment where neither exists.

An `OSError` while writing (disk full, no permission) leaves the previous state intact and is
raised as `StorageError`, whose message names the path that failed.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import shutil
import socket
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Optional

from crossgen.errors import InputError, StorageError


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary sibling of `path` to write (a file or a folder); on success it
    replaces `path` whole. On any error the temporary is removed and `path` is untouched."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    durable()  # a bad CROSSGEN_FSYNC is refused before anything is written
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _remove(tmp)
        yield tmp
        if tmp.is_dir():
            _fsync_tree(tmp)
        if path.is_dir():
            replace_dir(tmp, path)
        else:
            os.replace(tmp, path)
            _fsync_dir(path.parent)
    except OSError as exc:
        raise StorageError(path, exc) from exc
    finally:
        _remove(tmp)


def replace_dir(src: Path, dst: Path) -> None:
    """Move the finished folder `src` to `dst`, replacing an existing `dst` whole.

    With renameat2(RENAME_EXCHANGE) the two are swapped atomically and the old content is
    deleted afterwards from `src`'s name. Where the OS has no such call (macOS, old kernels,
    some network file systems) the old folder is first renamed aside (`.<name>.old-<pid>`)
    and `src` takes its place: a crash between those two renames leaves no `dst`, and a
    resumed run redoes that step."""
    src, dst = Path(src), Path(dst)
    if not dst.exists():
        os.replace(src, dst)
    elif _exchange(src, dst):
        shutil.rmtree(src, ignore_errors=True)  # the new content is in place: leftovers are only litter
    else:
        old = dst.with_name(f".{dst.name}.old-{os.getpid()}")
        _remove(old)
        os.replace(dst, old)
        os.replace(src, dst)
        shutil.rmtree(old)
    _fsync_dir(dst.parent)


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two existing paths (Linux >= 3.15); False where unsupported."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return False
    rc = renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    if rc == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):  # file system or kernel without it
        return False
    raise OSError(code, os.strerror(code), str(b))


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


FSYNC = "CROSSGEN_FSYNC"


def durable() -> bool:
    """Whether writes are flushed to the disk (os.fsync) before they count as done: yes unless
    CROSSGEN_FSYNC=0, for throwaway runs (the test suite). Without it a file still appears
    whole or not at all after a crash of the process (the rename is atomic); only a power
    loss can lose the latest writes."""
    value = os.environ.get(FSYNC, "1").strip()
    if value not in ("0", "1"):
        raise InputError(FSYNC, value, "1 (flush every write to the disk, the default) or 0 (skip the flushes)")
    return value == "1"


def _fsync(fd: int) -> None:
    if durable():
        os.fsync(fd)


def _fsync_tree(root: Path) -> None:
    if not durable():
        return
    for folder, _, files in os.walk(root):
        for name in files:
            fd = os.open(os.path.join(folder, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)


def _fsync_dir(folder: Path) -> None:
    if not durable():
        return
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # some platforms cannot open a directory
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# -- writers and readers -------------------------------------------------------------------


def write_text(path: Path, text: str) -> None:
    write_bytes(path, text.encode())


def write_bytes(path: Path, data: bytes) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        _fsync(fh.fileno())


def write_json(path: Path, data: Any) -> None:
    write_text(path, json.dumps(data, indent=2, default=_jsonable) + "\n")


def write_jsonl(path: Path, rows: Iterable[dict]) -> None:
    write_text(path, "".join(json.dumps(r, default=_jsonable) + "\n" for r in rows))


def read_jsonl(path: Path) -> list[dict]:
    with open(path) as fh:
        return [json.loads(line) for line in fh if line.strip()]


def write_table(path: Path, frame: Any) -> None:
    """A pandas DataFrame as CSV (10 significant digits, no index)."""
    write_text(path, frame.to_csv(index=False, float_format="%.10g"))


def read_yaml_mapping(path: Path, field: str, what: str = "a YAML mapping of settings") -> dict[str, Any]:
    """A YAML file that must hold a mapping (`what`); errors name `field` and the path."""
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text()) or {}
    except yaml.YAMLError as exc:
        raise InputError(field, str(path), f"valid YAML ({' '.join(str(exc).split())})") from None
    if not isinstance(data, dict):
        raise InputError(field, str(path), what)
    return data


def _jsonable(obj: Any) -> Any:
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


# -- one writer per directory ----------------------------------------------------------------


class DirectoryLock:
    """An exclusive lock on a directory, held while a run writes into it.

    The lock is an advisory `flock` on `<dir>/.lock`, which the kernel releases when its
    holder dies (kill -9 included), so a stale lock is taken over by simply acquiring it.
    The file records the holder's pid and host for the message a second writer gets.
    """

    NAME = ".lock"

    def __init__(self, root: Path, field: str = "--out"):
        self.root = Path(root)
        self.field = field
        self._fd: Optional[int] = None

    def acquire(self) -> DirectoryLock:
        import fcntl

        path = self.root / self.NAME
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 256, 0).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise InputError(
                self.field, str(self.root), f"a run directory no other process is writing (locked by {holder})"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on host {socket.gethostname()}\n".encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None

    def __enter__(self) -> DirectoryLock:
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()
