"""Atomic writes: a temp file in the destination folder, then a rename.

Nothing half-written is ever left under the final name, and an existing file
is only replaced when the caller asks for it.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from maskface_rt.errors import MaskfaceError


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
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        # After the writer: some (safetensors) replace the temp file, which brings back mkstemp's 0600.
        os.chmod(tmp, publishable_mode())
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


def write_bytes_atomic(path: str | Path, data: bytes, *, overwrite: bool = False) -> None:
    with atomic_path(path, overwrite=overwrite) as tmp:
        tmp.write_bytes(data)


def write_json_atomic(path: str | Path, obj: Any, *, overwrite: bool = False) -> None:
    write_bytes_atomic(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode(), overwrite=overwrite)


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
