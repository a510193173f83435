"""Crash-safe file writing: an output appears whole or not at all, on a disk or at a URL."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import tempfile
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from typing import IO, Any

from launcher import location
from launcher.machine import pid_alive, process_start

TMP_MARK = ".tmp-"
STALE_TMP_S = 6 * 3600  # a temporary file this old is a killed writer's, whatever its host
HOST_ID = hashlib.blake2b(socket.gethostname().encode(), digest_size=4).hexdigest()


def is_temporary(name: str) -> bool:
    """Whether a file name is one of :func:`atomic_write`'s temporaries."""
    return name.startswith(".") and TMP_MARK in name


def _writer_gone(name: str, path: str) -> bool:
    """A temporary ``.NAME.tmp-<host>-<pid>.<start>-<random>`` whose writer cannot still be
    writing: its process is gone, or its pid now names a process started at another time
    (a pid reused after a container restart)."""
    host, _, rest = name.rpartition(TMP_MARK)[2].partition("-")
    pid, _, started = rest.partition("-")[0].partition(".")
    if host == HOST_ID and pid.isdigit():
        if not pid_alive(int(pid)):
            return True
        now = process_start(int(pid)) if started else None
        return now is not None and now != started
    try:
        return time.time() - os.lstat(path).st_mtime > STALE_TMP_S
    except FileNotFoundError:
        return False


def sweep_stale(directory: str, names: Iterable[str]) -> None:
    """Delete the temporaries among ``names`` that killed writers left in ``directory``."""
    for name in names:
        path = os.path.join(directory, name)
        if is_temporary(name) and _writer_gone(name, path):
            with suppress(OSError):
                os.unlink(path)


def temporary_prefix(name: str) -> str:
    """The start of a temporary file's name for ``name``, telling :func:`sweep_stale` which
    host and process write it."""
    return f".{name}{TMP_MARK}{HOST_ID}-{_writer()}-"


def sweep_uploads() -> None:
    """Delete the local copies of uploads (:func:`location.upload_on_success`) that killed
    writers left in the temporary folder: they are not beside the outputs, and nothing
    else would ever remove them."""
    directory = tempfile.gettempdir()
    with suppress(OSError):
        names = [n for n in os.listdir(directory) if n.startswith(location.UPLOAD_PREFIX)]
        sweep_stale(directory, names)


def make_dirs(directory: str) -> None:
    """``os.makedirs(directory, exist_ok=True)`` without recursion: any depth works."""
    missing = []
    while directory and not os.path.isdir(directory):
        missing.append(directory)
        directory = os.path.dirname(directory)
    for d in reversed(missing):
        with suppress(FileExistsError):
            os.mkdir(d)


_WRITERS: dict[int, str] = {}  # this process as temporaries name it, by pid (a fork's own)


def _writer() -> str:
    """``<pid>.<start time>`` (``<pid>`` where the start time is unknown)."""
    pid = os.getpid()
    if pid not in _WRITERS:
        started = process_start(pid)
        _WRITERS[pid] = f"{pid}.{started}" if started else str(pid)
    return _WRITERS[pid]


@contextmanager
def atomic_write(
    path: str | os.PathLike, mode: str = "wb", *, create_dirs: bool = True, **open_kwargs: Any
) -> Iterator[IO]:
    """Open a temporary file beside ``path``; rename it over ``path`` only on success.

    A job killed mid-write leaves at most a hidden ``.NAME.tmp-<host>-<pid>.<start>-*``
    file, never a half-written ``path`` that a finish check would count as done;
    the next run's finish check sweeps it once its writer is gone. With
    ``create_dirs=False`` a missing folder raises FileNotFoundError instead of
    being created: a record must never recreate a folder moved away while it ran.
    At a URL (``s3://...``) the file is written locally and uploaded whole at the end.
    """
    path = os.fspath(path)
    if location.is_url(path):
        tmp_prefix = temporary_prefix(location.UPLOAD_PREFIX[1:])
        with location.upload_on_success(path, tmp_prefix, mode, **open_kwargs) as f:
            yield f
        return
    directory, name = os.path.split(os.path.abspath(path))
    if create_dirs:
        make_dirs(directory)
    fd, tmp = tempfile.mkstemp(prefix=temporary_prefix(name), dir=directory)
    try:
        with os.fdopen(fd, mode, **open_kwargs) as f:
            yield f
            f.flush()
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_json_atomic(path: str | os.PathLike, data: Any, *, create_dirs: bool = True) -> None:
    """Rewrite a small JSON record so readers never see a torn file."""
    with atomic_write(path, "w", create_dirs=create_dirs, encoding="utf-8") as f:
        json.dump(data, f, indent=2, default=str)
        f.write("\n")


def open(path: str | os.PathLike, mode: str = "rb", **kwargs: Any) -> IO:  # noqa: A001
    """Open a local path or any fsspec URL (``s3://bucket/key``), so that a task reads its
    inputs wherever they are; each process opens a URL's filesystem once."""
    return location.open(os.fspath(path), mode, **kwargs)
