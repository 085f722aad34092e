"""A consumer whose handler takes 2 s, run as a process by the SIGTERM test."""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path
from typing import Any

from contracts.events import Step
from events.amqp import AmqpSettings
from events.consumer import Consumer, Route
from events.dedupe import MemoryDedupe
from events.publisher import Publisher
from events.testing import amqp_url_from_env


def main(marker: Path) -> int:
    settings = AmqpSettings(url=amqp_url_from_env())

    def slow(event: Any, context: Any) -> None:
        marker.write_text("started")
        time.sleep(2)
        marker.write_text("finished")

    with Publisher(settings) as publisher:
        consumer = Consumer("slow-agent", ("mailbox.discovered",),
                            {"mailbox.discovered": Route(slow, Step.PROVISION)},
                            settings=settings, publisher=publisher, dedupe=MemoryDedupe())
        signal.signal(signal.SIGTERM, lambda *_: consumer.stop())
        import threading

        def announce() -> None:
            consumer.consuming.wait()
            marker.write_text("consuming")

        threading.Thread(target=announce, daemon=True).start()
        consumer.run()
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
