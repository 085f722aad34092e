"""Start lab servers as detached children and stop exactly the processes we started.

A PID file records the PID and the process's start time (from /proc), so a
stale file never makes us signal an unrelated process that reused the PID.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ManagedProcess"]


def _start_time(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command name may hold spaces and parentheses: fields start after the last ')'
    fields = stat.rsplit(")", 1)[1].split()
    state = fields[0]
    if state in ("Z", "X"):
        return None  # a zombie is not running
    return int(fields[19])


@dataclass(frozen=True)
class ManagedProcess:
    """One named server process of a lab directory."""

    name: str
    run_dir: Path

    @property
    def pid_file(self) -> Path:
        return self.run_dir / f"{self.name}.pid.json"

    @property
    def log_file(self) -> Path:
        return self.run_dir / f"{self.name}.log"

    def start(
        self, argv: Sequence[str], *, env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> int:
        """Spawn *argv* in its own session, stdout/stderr to the log file; return the PID."""
        if self.pid() is not None:
            raise RuntimeError(f"{self.name} is already running (pid {self.pid()})")
        self.run_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_file, "ab") as log:
            child = subprocess.Popen(
                list(argv), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True, env=dict(env) if env is not None else None, cwd=cwd,
            )
        started = _start_time(child.pid)
        self.pid_file.write_text(json.dumps(
            {"pid": child.pid, "start_time": started, "argv": list(argv)[:3]}
        ))
        return child.pid

    def pid(self) -> int | None:
        """The PID when the process we started is still alive, else None."""
        try:
            record = json.loads(self.pid_file.read_text())
        except (OSError, ValueError):
            return None
        pid = int(record["pid"])
        if _start_time(pid) != record.get("start_time"):
            return None
        return pid

    def exited_early(self) -> bool:
        return self.pid_file.exists() and self.pid() is None

    def stop(self, timeout: float = 10.0) -> bool:
        """SIGTERM the process group, SIGKILL after *timeout*; True if something was stopped."""
        pid = self.pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return False
        self._signal(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.pid() is not None:
            self._reap(pid)
            time.sleep(0.05)
        if self.pid() is not None:
            self._signal(pid, signal.SIGKILL)
            while self.pid() is not None:
                self._reap(pid)
                time.sleep(0.05)
        self.pid_file.unlink(missing_ok=True)
        return True

    def tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    @staticmethod
    def _signal(pid: int, sig: signal.Signals) -> None:
        try:
            os.killpg(pid, sig)  # the child leads its own session, so its group is its PID
        except ProcessLookupError:
            pass
        except PermissionError:
            os.kill(pid, sig)

    @staticmethod
    def _reap(pid: int) -> None:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
