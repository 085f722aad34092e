"""Files only their owner may read: private keys, passwords, the TSIG secret.

One way to write them, so no copy forgets that `O_CREAT` keeps the mode of a
file that already exists, or that `mkdir(mode=...)` is filtered by the umask
and ignored for a directory that exists.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["private_directory", "write_private"]


def private_directory(path: Path) -> Path:
    """*path* as a directory only its owner can enter (0700), created when missing."""
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    return path


def write_private(path: Path, data: str | bytes) -> None:
    """Replace *path* with *data*, mode 0600 before the first byte is written."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data.encode() if isinstance(data, str) else data)
