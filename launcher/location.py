"""Where data lives: a local path or any fsspec URL (``s3://``, ``gs://``, ``memory://``...).

The one module that tells the two apart. Callers test :func:`is_url` once per
root and keep their ``os`` fast paths for local paths, so a local run never
imports fsspec; a URL goes through fsspec, imported on first use, with one
filesystem object per process and scheme (fsspec's own instance cache, which a
forked worker does not inherit). Object stores have no folders and no rename:
a "folder" is a key prefix listed with one paginated, delimited listing, and a
whole-or-nothing write is a local temporary file uploaded in one piece.
"""

from __future__ import annotations

import os
import posixpath
import re
import tempfile
import time
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import IO, Any

from launcher.internals import parent_of

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+://")
UPLOAD_PREFIX = ".launcher-upload"  # local copies of uploads, in the temporary folder
_options: dict[str, Any] = {}  # task.storage_options: for every URL this process opens


def is_url(path: Any) -> bool:
    """Whether ``path`` names a location through fsspec (``scheme://...``) rather than a
    local path."""
    return isinstance(path, str) and _SCHEME.match(path) is not None


def use_storage_options(options: dict[str, Any] | None) -> None:
    """Open every URL of this process with ``options`` (``task.storage_options``: an
    endpoint, a profile, credentials), as ``fsspec.open(url, **options)`` would."""
    _options.clear()
    _options.update(options or {})


def storage_options() -> dict[str, Any]:
    """The options URLs are opened with, for a worker process to use the same."""
    return dict(_options)


def filesystem(url: str) -> tuple[Any, str]:
    """The fsspec filesystem serving ``url`` and the path inside it; the same filesystem
    object for every URL of a scheme in this process (its connections are reused), its
    transient errors counted (:mod:`launcher.transient_errors`)."""
    from fsspec.core import url_to_fs

    from launcher import transient_errors

    try:
        fs, path = url_to_fs(url, **_options)
    except (ImportError, ValueError) as e:
        from launcher.errors import ConfigError

        scheme = url.partition("://")[0]
        raise ConfigError(
            f"{url!r}: no filesystem for {scheme}:// ({e}). For s3:// install the extra "
            "`pip install 'shard-launcher[s3]'`; other schemes need their fsspec package "
            "(gcsfs for gs://, adlfs for az://)."
        ) from None
    transient_errors.watch(fs)
    return fs, path


def join(root: str, rel: str) -> str:
    """``root/rel`` for a URL or a path (no ``os.path`` checks)."""
    return root + rel if root.endswith("/") else f"{root}/{rel}"


def dirname(url: str) -> str:
    """The prefix a URL's object lives under (``s3://b/x/y.txt`` -> ``s3://b/x``)."""
    scheme, sep, rest = url.partition("://")
    return f"{scheme}{sep}{posixpath.dirname(rest)}" if sep else os.path.dirname(url)


def normalize(url: str) -> str:
    """``..`` and ``.`` resolved inside the URL's path (``s3://b/x/../y`` -> ``s3://b/y``)."""
    scheme, sep, rest = url.partition("://")
    return f"{scheme}{sep}{posixpath.normpath(rest)}" if sep else os.path.normpath(url)


def absolute(path: str) -> str:
    """A path made absolute, a URL without a trailing ``/``: one name for one folder
    (``s3://b/out/`` and ``s3://b/out`` are the same outputs, as ``out/`` and ``out`` are)."""
    if not is_url(path):
        return os.path.abspath(path)
    scheme, sep, rest = path.partition("://")
    return f"{scheme}{sep}{rest.rstrip('/')}" if rest.strip("/") else path


def store_errors() -> tuple[type[BaseException], ...]:
    """What a request to a store can raise: OSError (what fsspec translates errors to),
    and the client's own errors s3fs leaves untranslated (botocore's, for a connection
    that failed or credentials that could not be found)."""
    try:
        from botocore.exceptions import BotoCoreError, ClientError
    except ImportError:
        return (OSError,)
    return (OSError, BotoCoreError, ClientError)


def scandir(url: str) -> list[tuple[str, bool]]:
    """``(name, is a folder)`` of what is directly under the prefix ``url``, in name order
    as on a disk: one paginated listing. Raises FileNotFoundError when nothing is there."""
    fs, path = filesystem(url)
    entries = fs.ls(path, detail=True, refresh=True)
    fs.invalidate_cache(path)  # the caller keeps what it needs: memory stays bounded
    out = {}
    base = path.rstrip("/")
    for e in entries:
        name = e["name"].rstrip("/")
        if name == base:  # a zero-byte "folder" object some tools write
            continue
        out[posixpath.basename(name)] = e["type"] == "directory"
    return sorted(out.items())


def names(url: str) -> list[str]:
    """Names directly under the prefix ``url`` (none when nothing is there): one listing."""
    try:
        return [name for name, _ in scandir(url)]
    except (FileNotFoundError, NotADirectoryError):
        return []


def kind(url: str) -> str | None:
    """``"file"``, ``"directory"`` or None (nothing there, or no such bucket: see
    :func:`check_reachable`); refused credentials raise PermissionError."""
    fs, path = filesystem(url)
    try:
        info = fs.info(path)
    except FileNotFoundError:
        return None
    return "directory" if info["type"] == "directory" else "file"


_SIZES: OrderedDict[str, dict[str, int]] = OrderedDict()  # sizes by name, of recent prefixes
SIZED_PREFIXES = 2


def listed_size(url: str) -> int:
    """The size of the object at ``url`` from one listing of its prefix, kept for the next
    objects of that prefix (items come folder by folder): a size per item without a
    request per item. FileNotFoundError when the listing does not name it."""
    prefix, _, name = url.rstrip("/").rpartition("/")
    sizes = _SIZES.get(prefix)
    if sizes is None:
        fs, path = filesystem(prefix)
        entries = fs.ls(path, detail=True, refresh=True)
        fs.invalidate_cache(path)
        sizes = {posixpath.basename(e["name"].rstrip("/")): e.get("size") or 0 for e in entries}
        _SIZES[prefix] = sizes
        while len(_SIZES) > SIZED_PREFIXES:
            _SIZES.popitem(last=False)
    if name not in sizes:
        raise FileNotFoundError(url)
    return sizes[name]


def check_reachable(url: str) -> None:
    """Ask the store once whether ``url``'s bucket answers: no such bucket and refused
    credentials raise (FileNotFoundError, PermissionError), a missing prefix does not."""
    fs, path = filesystem(url)
    if _has_folders(fs):
        return
    bucket = path.lstrip("/").split("/", 1)[0]
    fs.invalidate_cache(bucket)
    fs.info(bucket)  # one request about the bucket, whatever it holds


def open(url: str, mode: str = "rb", **kwargs: Any) -> IO:  # noqa: A001 - fsspec's word
    """Open ``url`` (or a path) for reading or writing through its filesystem."""
    if not is_url(url):
        import builtins

        return builtins.open(url, mode, **kwargs)
    fs, path = filesystem(url)
    return fs.open(path, mode, **kwargs)


def _has_folders(fs: Any) -> bool:
    """Whether a write needs its folder made first: on a file system, not on an object store
    (where making one could even create a bucket)."""
    protocols = (fs.protocol,) if isinstance(fs.protocol, str) else fs.protocol
    return "file" in protocols or "local" in protocols


def makedirs(url: str) -> None:
    """Make a folder (nothing to make on an object store, where prefixes need no folder)."""
    if not is_url(url):
        os.makedirs(url, exist_ok=True)
        return
    fs, path = filesystem(url)
    if _has_folders(fs):
        fs.makedirs(path, exist_ok=True)


@contextmanager
def upload_on_success(
    url: str, tmp_prefix: str, mode: str = "wb", **open_kwargs: Any
) -> Iterator[IO]:
    """A local temporary file (named ``tmp_prefix*``, in the temporary folder), uploaded
    whole to ``url`` once the block ends without an error: the object exists whole or not
    at all, even when the process is killed (a multipart upload is completed only at its
    end). A failed upload raises, failing the item that wrote it. A killed writer's copy
    is deleted by the next job (:func:`launcher.io.sweep_uploads`)."""
    fs, path = filesystem(url)
    fd, tmp = tempfile.mkstemp(prefix=tmp_prefix)
    try:
        with os.fdopen(fd, mode, **open_kwargs) as f:
            yield f
        if _has_folders(fs):
            fs.makedirs(parent_of(fs, path), exist_ok=True)
        fs.put_file(tmp, path)
    finally:
        with suppress(FileNotFoundError):
            os.unlink(tmp)


def create_exclusive(url: str, text: str) -> bool:
    """Write ``text`` to ``url`` only if nothing is there (a conditional PUT on S3); False
    when something already is."""
    fs, path = filesystem(url)
    try:
        fs.pipe_file(path, text.encode(), mode="create")
    except FileExistsError:
        return False
    return True


def write_text(url: str, text: str) -> None:
    """Replace ``url`` with ``text`` in one upload."""
    fs, path = filesystem(url)
    fs.pipe_file(path, text.encode())


def age_s(url: str) -> float:
    """Seconds since ``url`` was last written; FileNotFoundError when it is not there."""
    fs, path = filesystem(url)
    modified = fs.modified(path)
    return time.time() - modified.timestamp()


def remove(url: str) -> None:
    """Delete ``url`` if it is there."""
    fs, path = filesystem(url)
    with suppress(FileNotFoundError):
        fs.rm_file(path)


def files_matching(url: str, prefix: str, suffix: str) -> list[str]:
    """URLs of the objects directly under ``url`` named ``prefix*suffix`` (one listing)."""
    return [join(url, n) for n in names(url) if n.startswith(prefix) and n.endswith(suffix)]
