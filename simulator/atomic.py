"""The one atomic file write of idealrt: tables, measurements, fits, CSVs and reports are never half-written."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

from simulator.errors import UserError


def write_atomic(path: str | os.PathLike, data: str | bytes) -> Path:
    """Write `data` to a temporary file beside `path`, flush it to disk, then rename it over `path`.

    A reader (or a run killed half way) sees the old file or the new one, never a mix. The file gets an
    ordinary mode (0644 under the usual umask), not mkstemp's private 0600. Returns the path. Folders are
    not created; a missing folder or one that cannot be written (permissions, read-only file system,
    /proc) is a UserError naming the path.
    """
    path = Path(path)
    if not path.parent.is_dir():
        raise UserError(f"{path}: folder {path.parent} does not exist; create it first or choose another path")
    if path.is_dir():
        raise UserError(f"{path} is a folder; give a file name inside it")
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as e:
        raise _cannot_write(path, e) from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except OSError as e:
        Path(tmp).unlink(missing_ok=True)
        raise _cannot_write(path, e) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _cannot_write(path: Path, e: OSError) -> UserError:
    return UserError(f"{path}: cannot write it ({e.strerror or e}); choose a folder you can write to")
