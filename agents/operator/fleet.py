"""Running the five agents as separate processes (the demo and the end-to-end tests).

Each agent is `python -m agents --config <file> agent <name>`, its JSON log in
`<log_dir>/<name>.log`. Ready means its work queue has a consumer, as the
broker sees it; stopping sends SIGTERM and waits for a clean exit.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from contracts.topology import Agent, queues_for
from events.admin import BrokerAdmin

__all__ = ["AgentFleet", "FleetError"]


class FleetError(RuntimeError):
    pass


@dataclass
class AgentFleet:
    config_file: Path
    log_dir: Path
    vhost: str
    admin: BrokerAdmin
    env: Mapping[str, str] = field(default_factory=dict)
    names: Sequence[str] = tuple(agent.value for agent in Agent)
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, timeout: float = 60.0) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        environment = {**os.environ, **self.env}
        for name in self.names:
            log = open(self.log_dir / f"{name}.log", "ab")  # noqa: SIM115 - owned by the child
            self.processes[name] = subprocess.Popen(
                [sys.executable, "-m", "agents", "--config", str(self.config_file), "agent", name],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=environment,
                start_new_session=True,
            )
            log.close()
        self.wait_ready(timeout)

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        waiting = set(self.names)
        while waiting:
            for name in list(waiting):
                process = self.processes[name]
                if process.poll() is not None:
                    raise FleetError(f"{name} exited with {process.returncode}:\n{self.tail(name)}")
                try:
                    consumers = self.admin.queue(self.vhost, queues_for(name).work).get("consumers", 0)
                except RuntimeError:
                    consumers = 0  # not declared yet
                if consumers:
                    waiting.discard(name)
            if waiting and time.monotonic() > deadline:
                name = sorted(waiting)[0]
                raise FleetError(
                    f"{', '.join(sorted(waiting))} did not start within {timeout:.0f} s; "
                    f"{name}'s log:\n{self.tail(name)}"
                )
            time.sleep(0.2)

    def stop(self, timeout: float = 30.0) -> dict[str, int | None]:
        """SIGTERM every agent, wait for them; the exit codes (None: had to be killed)."""
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        codes: dict[str, int | None] = {}
        deadline = time.monotonic() + timeout
        for name, process in self.processes.items():
            try:
                codes[name] = process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
                codes[name] = None
        return codes

    def tail(self, name: str, lines: int = 15) -> str:
        try:
            text = (self.log_dir / f"{name}.log").read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])
