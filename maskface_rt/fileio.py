"""Atomic writes: a temp file in the destination folder, fsynced, then a rename, then the folder fsynced (a whole
folder: ``replace_folder``); the one reader of untrusted JSON files (``read_json_object``); and ``what_is_there``,
what a path names in words.

Nothing half-written is ever left under the final name, and an existing file
is only replaced when the caller asks for it. Once a write returns, its file and
name are on the disk (a power cut keeps them). Temp names are short
(``.mf<pid>-<random>.tmp``, whatever the final name's length) and name their
process, so that ``remove_stale_temps`` can remove those a killed run left.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import json
import math
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from maskface_rt.errors import MaskfaceError

_TEMP_PREFIX, _TEMP_SUFFIX = ".mf", ".tmp"
#: Exactly the temp names atomic_path makes: prefix, process id, '-', mkstemp's 8 random characters.
_TEMP_NAME = re.compile(r"\.mf(?P<pid>\d+)-[a-z0-9_]{8}\.tmp")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def publishable_mode(is_dir: bool = False) -> int:
    """The mode a plainly created file or folder would get (mkstemp/mkdtemp make them private)."""
    return (0o777 if is_dir else 0o666) & ~_umask()


@contextlib.contextmanager
def atomic_path(path: str | Path, *, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it becomes ``path``.

    With ``overwrite=False`` an existing ``path`` is an error (checked before and,
    race-free, at publication through a hard link). On any exception the temp
    file is removed and ``path`` is untouched.
    """
    path = Path(path)
    if not overwrite and path.exists():
        raise MaskfaceError(path, "already exists (pass --overwrite to replace it)")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f"{_TEMP_PREFIX}{os.getpid()}-", suffix=_TEMP_SUFFIX, dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        # After the writer: some (safetensors) replace the temp file, which brings back mkstemp's 0600.
        os.chmod(tmp, publishable_mode())
        fsync(tmp)
        if overwrite:
            os.replace(tmp, path)
        else:
            try:
                os.link(tmp, path)
            except FileExistsError:
                raise MaskfaceError(path, "already exists (pass --overwrite to replace it)") from None
            except OSError:  # file systems without hard links
                if path.exists():
                    raise MaskfaceError(path, "already exists (pass --overwrite to replace it)") from None
                os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    fsync(path.parent)


def fsync(path: Path) -> None:
    """Flush a file's data, or a folder's entries, to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def check_writable(folder: str | Path) -> None:
    """Create and remove one temp file in ``folder``: a read-only folder is found before any work."""
    try:
        fd, name = tempfile.mkstemp(prefix=f"{_TEMP_PREFIX}{os.getpid()}-", suffix=_TEMP_SUFFIX, dir=folder)
        os.close(fd)
        os.unlink(name)
    except OSError as e:
        raise MaskfaceError(folder, f"cannot write in this folder ({e.strerror or e})") from None


def remove_stale_temps(folder: str | Path) -> int:
    """Remove the temp files that atomic_path left in ``folder`` from processes that no longer run
    (killed mid-write); only names of exactly that pattern. Returns how many were removed."""
    removed = 0
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return 0
    for entry in entries:
        match = _TEMP_NAME.fullmatch(entry.name)
        if match and entry.is_file(follow_symlinks=False) and not _running(int(match["pid"])):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(entry.path)
                removed += 1
    return removed


def _running(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True  # another user's process (or a pid we cannot ask about): leave its files alone
    return True


def replace_folder(new: str | Path, target: str | Path, *, keep_old: str | Path | None = None) -> None:
    """Put the folder ``new`` (on the same file system) in the place of ``target``, whole: ``target`` is at every
    moment the old folder or the new one where the kernel can exchange two names (Linux's renameat2); elsewhere it
    is absent for the instant between two renames, and put back if the second fails. The old folder then moves to
    ``keep_old`` (nothing is lost), or is removed when that is None. A ``target`` that is not there is just made."""
    new, target = Path(new), Path(target)
    if not target.exists():
        os.rename(new, target)
        fsync(target.parent)
        return
    if _exchange(new, target):
        old = new  # the exchange left the old folder under the new one's name
    else:
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        os.rename(target, old)
        try:
            os.rename(new, target)
        except BaseException:
            os.rename(old, target)
            raise
    fsync(target.parent)
    if keep_old is None:
        shutil.rmtree(old)
    else:
        shutil.move(old, keep_old)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two names atomically (renameat2's RENAME_EXCHANGE); False where the system cannot."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    return renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0


def write_bytes_atomic(path: str | Path, data: bytes, *, overwrite: bool = False) -> None:
    with atomic_path(path, overwrite=overwrite) as tmp:
        tmp.write_bytes(data)


def write_json_atomic(path: str | Path, obj: Any, *, overwrite: bool = False) -> None:
    write_bytes_atomic(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode(), overwrite=overwrite)


#: Largest JSON file read from a model folder (manifests and sidecars are a few kB).
MAX_JSON_BYTES = 4 * 2**20


def read_json_object(path: str | Path, what: str) -> dict[str, Any]:
    """An untrusted JSON file that must hold one object (``what``: its name in messages): too large, unreadable,
    not JSON, nested past the parser's recursion limit or not an object is one MaskfaceError naming the file."""
    path = Path(path)
    try:
        if path.stat().st_size > MAX_JSON_BYTES:
            raise MaskfaceError(path, f"{what} is larger than {MAX_JSON_BYTES // 2**20} MiB: not one maskface wrote")
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise MaskfaceError(path, f"unreadable {what} ({e})") from None
    except RecursionError:
        raise MaskfaceError(path, f"unreadable {what} (nested too deeply)") from None
    if not isinstance(data, dict):
        raise MaskfaceError(path, f"not a {what} (a JSON {type(data).__name__}, not an object)")
    return data


def json_safe(obj: Any) -> Any:
    """``obj`` with what JSON cannot hold made plain: infinities as the strings "inf" / "-inf" (identical
    images have PSNR inf), NaN as null, tuples as lists, paths as strings."""
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None if math.isnan(obj) else ("inf" if obj > 0 else "-inf")
    if isinstance(obj, Path):
        return str(obj)
    return obj


#: What ``what_is_there`` calls the kinds of file that are not regular files or folders.
SPECIAL_FILES = ("FIFO", "socket", "device")


def what_is_there(path: str | Path, *, missing: str = "no such file or folder") -> str:
    """What ``path`` names, in words for a one-line message: "file", "folder", one of SPECIAL_FILES, or why there
    is nothing to read: ``missing``, "dangling symlink (to TARGET)", "symlink loop", "cannot read (...)"."""
    path = Path(path)
    try:
        mode = path.stat().st_mode
    except OSError as e:
        if e.errno == errno.ELOOP:
            return "symlink loop"
        if e.errno == errno.ENOENT and path.is_symlink():
            with contextlib.suppress(OSError):
                return f"dangling symlink (to {os.readlink(path)})"
        if e.errno in (errno.ENOENT, errno.ENOTDIR):
            return missing
        return f"cannot read ({e.strerror or e})"
    if stat.S_ISDIR(mode):
        return "folder"
    if stat.S_ISREG(mode):
        return "file"
    return "FIFO" if stat.S_ISFIFO(mode) else "socket" if stat.S_ISSOCK(mode) else "device"
