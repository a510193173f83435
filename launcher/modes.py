"""Input modes, output modes and the output-existence finish check.

kagurazaka's templates as plain classes a task config can name with
``_target_``. Input modes list items deterministically (sorted at every
level); output modes map an item key to its output path and answer "is this
item done?" from one directory listing per output directory, not one ``stat``
per item.
"""

from __future__ import annotations

import json
import logging
import os
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from launcher import location
from launcher.errors import InputError, UserError
from launcher.io import TMP_MARK, is_temporary, sweep_stale
from launcher.location import is_url

log = logging.getLogger(__name__)


def join(root: str, rel: str) -> str:
    """``os.path.join(root, rel)``, several times faster for the case planning meets per item:
    a relative path under a non-empty root."""
    if not root or rel.startswith("/"):
        return os.path.join(root, rel)
    return root + rel if root.endswith("/") else f"{root}/{rel}"


OnError = Callable[[str, OSError], None]  # (folder relative to the root, why it was skipped)


def _warn(rel: str, exc: OSError) -> None:
    log.warning("skipped the folder %r: %s", rel or ".", exc)


def _real_id(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def walk_dirs(
    root: str,
    exclude: Sequence[str] = (),
    on_error: OnError | None = None,
    files: bool = True,
    max_depth: int | None = None,
) -> Iterator[tuple[str, bool, int]]:
    """``(path relative to root, is a folder, depth)`` in name order at every level,
    like ``find | sort``; folders are yielded before their contents.

    Symlinks to files are followed; a folder (symlinked or not) is entered once
    per real folder, so a symlink loop ends; the ``exclude`` folders (the task's
    outputs) are left out; a folder that cannot be read goes to ``on_error`` and
    the walk goes on; folders at ``max_depth`` are not entered. Iterative, so a
    deep tree cannot overflow the stack. A URL root is walked the same way, one
    listing per prefix, so items come in the order of the same tree on a disk.
    """
    report = on_error or _warn
    if is_url(root):
        enter_folder, admit = _url_walker(root, exclude, report)
    else:
        enter_folder, admit = _disk_walker(root, exclude, report)
    stack: list[Iterator[tuple[str, bool]]] = []

    def enter(rel: str) -> Iterator[tuple[str, bool]]:
        entries = enter_folder(rel)
        return ((f"{rel}/{name}" if rel else name, is_dir) for name, is_dir in entries)

    stack.append(enter(""))
    while stack:
        entry = next(stack[-1], None)
        if entry is None:
            stack.pop()
            continue
        path, is_dir = entry
        if not is_dir:
            if files:
                yield path, False, len(stack)
            continue
        if not admit(path):
            continue
        depth = len(stack)
        yield path, True, depth
        if max_depth is None or depth < max_depth:
            stack.append(enter(path))


Walker = tuple[Callable[[str], list[tuple[str, bool]]], Callable[[str], bool]]


def _disk_walker(root: str, exclude: Sequence[str], report: OnError) -> Walker:
    """A folder's sorted entries, and whether to enter a folder: once per real folder."""
    skip = {i for i in (_real_id(d) for d in exclude) if i is not None}
    seen = {_real_id(root)}

    def entries(rel: str) -> list[tuple[str, bool]]:
        try:
            with os.scandir(os.path.join(root, rel) if rel else root) as it:
                return sorted((e.name, e.is_dir()) for e in it)
        except OSError as exc:
            report(rel, exc)
            return []

    def admit(path: str) -> bool:
        try:
            st = os.stat(os.path.join(root, path))
        except OSError as exc:
            report(path, exc)
            return False
        real = st.st_dev, st.st_ino
        if real in seen or real in skip:
            return False
        seen.add(real)
        return True

    return entries, admit


def _url_walker(root: str, exclude: Sequence[str], report: OnError) -> Walker:
    """A prefix's sorted entries (one listing), and whether to enter a prefix: not an
    excluded one (object stores have no links, so no loops)."""
    skip = {location.normalize(d) for d in exclude if d and is_url(d)}

    def entries(rel: str) -> list[tuple[str, bool]]:
        try:
            return location.scandir(location.join(root, rel) if rel else root)
        except OSError as exc:
            report(rel, exc)
            return []

    def admit(path: str) -> bool:
        return location.normalize(location.join(root, path)) not in skip

    return entries, admit


def walk_sorted(
    root: str, exclude: Sequence[str] = (), on_error: OnError | None = None
) -> Iterator[str]:
    """File paths relative to ``root`` in name order at every level (see :func:`walk_dirs`)."""
    for path, is_dir, _ in walk_dirs(root, exclude, on_error):
        if not is_dir:
            yield path


def _check_dir(root: str | None, key: str) -> str:
    if not root:
        raise InputError(f"{key} is not set: the task's input mode needs a directory to list.")
    if is_url(root):
        what = url_kind(root, key)
        if what is None:
            raise InputError(f"{key}={root!r} does not exist: no object has that prefix.")
        if what != "directory":
            raise InputError(f"{key}={root!r} is an object, not a prefix to list.")
        return root
    if not os.path.exists(root):
        raise InputError(f"{key}={root!r} does not exist.")
    if not os.path.isdir(root):
        raise InputError(f"{key}={root!r} is not a directory.")
    if not os.access(root, os.R_OK | os.X_OK):
        raise InputError(f"{key}={root!r} is not readable by this user.")
    return root


def url_kind(url: str, key: str) -> str | None:
    """What is at ``url`` (``"file"``, ``"directory"`` or None), or a paragraph naming ``key``
    when the store cannot say: no such bucket, refused credentials, an unreachable endpoint."""
    try:
        location.check_reachable(url)
        what = location.kind(url)
    except PermissionError as e:
        raise InputError(
            f"{key}={url!r}: the object store refused access ({e}). Credentials and the "
            "endpoint come from the standard places: AWS_ACCESS_KEY_ID / "
            "AWS_SECRET_ACCESS_KEY or AWS_PROFILE and ~/.aws, and AWS_ENDPOINT_URL for an "
            "S3-compatible server; nothing was processed."
        ) from None
    except FileNotFoundError as e:
        raise InputError(
            f"{key}={url!r}: the bucket does not exist ({e}); check its name (and "
            "AWS_ENDPOINT_URL, for an S3-compatible server). Nothing was processed."
        ) from None
    except UserError:
        raise  # no filesystem for the scheme: its own paragraph
    except Exception as e:  # noqa: BLE001 - the store's client raises many kinds
        raise InputError(
            f"{key}={url!r} cannot be reached ({type(e).__name__}: {e}); check the URL, the "
            "network and AWS_ENDPOINT_URL. Nothing was processed."
        ) from None
    return what


def jsonl_values(path: str) -> Iterator[tuple[int, Any]]:
    """``(line number, parsed value)`` for each non-blank line; a bad line names itself."""
    with location.open(path, "r", encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                yield lineno, json.loads(line)
            except json.JSONDecodeError as e:
                raise InputError(f"{path}:{lineno}: not valid JSON ({e.msg}).") from None


class InputMode:
    """Lists a task's items as ``(key, input path)`` pairs."""

    unique_keys = True  # the listing cannot give one key twice

    def check(self, root: str | None, key: str) -> None:
        _check_dir(root, key)

    def entries(
        self, root: str, exclude: Sequence[str] = (), on_error: OnError | None = None
    ) -> Iterator[tuple[str, str]]:
        """The items under ``root``, never those under an ``exclude`` folder (the task's
        outputs, the launcher's state); a folder that cannot be read goes to
        ``on_error`` (the planner records it), or is logged."""
        raise NotImplementedError

    def describe(self) -> str:
        return type(self).__name__


class ByExtensions(InputMode):
    """Every file under the root whose suffix is one of ``extensions`` (case-insensitive)."""

    def __init__(self, extensions: Sequence[str]) -> None:
        self.extensions = tuple(
            e.lower() if e.startswith(".") else f".{e.lower()}" for e in extensions
        )

    def entries(
        self, root: str, exclude: Sequence[str] = (), on_error: OnError | None = None
    ) -> Iterator[tuple[str, str]]:
        exts = self.extensions
        for rel in walk_sorted(root, exclude, on_error):
            if rel.lower().endswith(exts) and rel[rel.rfind("/") + 1] != ".":
                yield rel, join(root, rel)

    def describe(self) -> str:
        return f"files with extensions {list(self.extensions)}"


class ByGlob(InputMode):
    """Files whose path relative to the root matches ``pattern`` (fnmatch: ``*`` crosses ``/``)."""

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern

    def entries(
        self, root: str, exclude: Sequence[str] = (), on_error: OnError | None = None
    ) -> Iterator[tuple[str, str]]:
        from fnmatch import fnmatchcase

        for rel in walk_sorted(root, exclude, on_error):
            if fnmatchcase(rel, self.pattern):
                yield rel, join(root, rel)

    def describe(self) -> str:
        return f"files matching {self.pattern!r}"


class BySubdir(InputMode):
    """Each directory exactly ``level`` levels below the root is one item (a sample folder)."""

    def __init__(self, level: int = 1) -> None:
        if level < 1:
            raise ValueError(f"BySubdir level must be >= 1, got {level}")
        self.level = level

    def entries(
        self, root: str, exclude: Sequence[str] = (), on_error: OnError | None = None
    ) -> Iterator[tuple[str, str]]:
        for rel, _, depth in walk_dirs(root, exclude, on_error, files=False, max_depth=self.level):
            if depth == self.level:
                yield rel, join(root, rel)

    def describe(self) -> str:
        return f"directories at level {self.level}"


class FromJsonl(InputMode):
    """Items listed in a JSONL file (the task's ``input_dir`` names the file).

    A line is either a JSON string (an input path) or an object; an object's
    ``key_field`` (or else its ``path_field``) gives the key. Relative paths are
    resolved against the list file's directory. A key taken from a path is that
    path relative to the list's directory, or, for a path elsewhere, the absolute
    path without its leading ``/`` (at a URL, its bucket and key): an output never lands
    beside its input. A list at a URL resolves its relative paths against its prefix.
    """

    unique_keys = False  # a list may name one item twice

    def __init__(self, path_field: str = "input", key_field: str = "key") -> None:
        self.path_field = path_field
        self.key_field = key_field

    def check(self, root: str | None, key: str) -> None:
        if root and is_url(root):
            if url_kind(root, key) != "file":
                raise InputError(f"{key}={root!r} is not a JSONL file.")
            return
        if not root or not os.path.isfile(root):
            raise InputError(f"{key}={root!r} is not a JSONL file.")
        if not os.access(root, os.R_OK):
            raise InputError(f"{key}={root!r} is not readable by this user.")

    def entries(
        self, root: str, exclude: Sequence[str] = (), on_error: OnError | None = None
    ) -> Iterator[tuple[str, str]]:
        url = is_url(root)
        base = location.dirname(root) if url else os.path.dirname(os.path.abspath(root))
        for lineno, value in jsonl_values(root):
            if isinstance(value, str):
                value = {self.path_field: value}
            if not isinstance(value, dict):
                raise InputError(
                    f"{root}:{lineno}: the line is a JSON {type(value).__name__}, not an object "
                    f"or a string: each line names one item ({{{self.path_field!r}: ...}}, or "
                    "its path as a string)."
                )
            path = value.get(self.path_field)
            key = value.get(self.key_field, path)
            if key is None:
                raise InputError(
                    f"{root}:{lineno}: the line has neither {self.key_field!r} "
                    f"nor {self.path_field!r}."
                )
            if url or is_url(path):  # a list on a disk may name objects by their URLs
                full = _resolve_in(base, path) if path else ""
            else:
                full = os.path.normpath(os.path.join(base, path)) if path else ""
            if self.key_field not in value and full:
                key = _key_of_path(full, base)
            yield str(key), full

    def describe(self) -> str:
        return "lines of a JSONL list"


def _resolve_in(base: str, path: str) -> str:
    """A path named by a list on object storage: a URL as it is, else under the list's prefix."""
    if is_url(path) or path.startswith("/"):
        return path
    return location.normalize(location.join(base, path))


def _key_of_path(path: str, base: str) -> str:
    if path.startswith(base.rstrip("/") + "/"):
        return path[len(base.rstrip("/")) + 1 :]
    if "://" in path:  # elsewhere at a URL: the bucket and key, without the scheme
        return path.partition("://")[2]
    return path.lstrip("/")


class DirListings:
    """A bounded cache of directory listings: the bulk half of the finish check."""

    def __init__(self, max_dirs: int = 64) -> None:
        self._cache: OrderedDict[str, frozenset[str]] = OrderedDict()
        self._max = max_dirs

    def names(self, directory: str) -> frozenset[str]:
        names = self._cache.get(directory)
        if names is None:
            try:
                listed = location.names(directory) if is_url(directory) else os.listdir(directory)
            except (FileNotFoundError, NotADirectoryError):
                listed = []
            names = frozenset(listed)
            if TMP_MARK in "\0".join(listed):  # left by a killed writer: swept, never outputs
                sweep_stale(directory, [n for n in listed if is_temporary(n)])
                names = frozenset(n for n in listed if not is_temporary(n))
            self._cache[directory] = names
            if len(self._cache) > self._max:
                self._cache.popitem(last=False)
        return names

    def exists(self, path: str) -> bool:
        directory, sep, name = path.rpartition("/")  # os.path.split's answer, without its checks
        return name in self.names(directory or sep)


class OutputMode:
    """Maps an item key to its output path and checks whether that output exists."""

    injective = False  # True: two keys never map to one path (else the planner checks)

    def path(self, root: str, key: str) -> str:
        raise NotImplementedError

    def is_done(self, output: str, listings: DirListings) -> bool:
        return listings.exists(output)


class AppendExtension(OutputMode):
    """``<root>/<key><extension>``, or with the key's suffix replaced when ``replace_suffix``."""

    def __init__(self, extension: str, replace_suffix: bool = False) -> None:
        self.extension = extension
        self.replace_suffix = replace_suffix
        self.injective = not replace_suffix  # a.png and a.jpg both give a<extension>

    def path(self, root: str, key: str) -> str:
        if self.replace_suffix:
            key = os.path.splitext(key)[0]
        return join(root, key + self.extension)


class PerInputFolder(OutputMode):
    """``<root>/<key>/`` holding the named ``files``; done when all of them exist."""

    injective = True

    def __init__(self, files: Sequence[str]) -> None:
        if not files:
            raise ValueError("PerInputFolder needs at least one file name in 'files'")
        self.files = tuple(files)

    def path(self, root: str, key: str) -> str:
        return os.path.join(root, key)

    def is_done(self, output: str, listings: DirListings) -> bool:
        if not listings.exists(output):
            return False
        present = listings.names(output)
        return all(name in present for name in self.files)
