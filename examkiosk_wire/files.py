"""Private files written whole: the station's settings, the broker's password and ACL files, the
edge's TLS key and certificate."""
from __future__ import annotations

import logging
import os
import pwd
import shutil
import threading
from pathlib import Path

logger = logging.getLogger(__name__)


def write_private(path: Path, data: str | bytes, *, replace: bool, mode: int = 0o600,
                  owner: str | None = None) -> None:
    """Write ``data`` to ``path`` with ``mode``, atomically: a reader sees the old file or the whole
    new one, and the folder is fsynced. Without ``replace`` an existing file is never touched
    (FileExistsError), so of two processes making the same file the first one wins."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb" if isinstance(data, bytes) else "w") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        chown(tmp, owner)
        if replace:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)  # fails if the file appeared meanwhile
    finally:
        tmp.unlink(missing_ok=True)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def chown(path: Path, owner: str | None) -> None:
    """As root, give the file to a service user (it reads it after dropping privileges)."""
    if owner is None or os.geteuid() != 0:
        return
    try:
        pwd.getpwnam(owner)
    except KeyError:
        logger.info("no user %s: %s stays owned by root", owner, path)
        return
    shutil.chown(path, owner, owner)
