"""``python -m lab.exo --config FILE``: serve until SIGTERM or SIGINT, then save state and exit 0."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path

from lab.exo.config import ExoConfig
from lab.exo.server import ExoStandIn

log = logging.getLogger("lab.exo")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.exo",
                                     description="Exchange Online stand-in for the Homebound lab")
    parser.add_argument("--config", required=True, type=Path, help="ExoConfig JSON file")
    parser.add_argument("--port-file", type=Path,
                        help="write the bound port here once listening (useful with port 0)")
    args = parser.parse_args(argv)
    logging.basicConfig(stream=sys.stderr, level=logging.INFO,
                        format="%(asctime)s %(name)s %(message)s")
    config = ExoConfig.from_file(args.config)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    standin = ExoStandIn(config).start()
    if args.port_file is not None:
        args.port_file.write_text(f"{standin.port}\n", encoding="utf-8")
    log.info("listening on %s for tenant %s (%s), %d recipients", standin.base_url,
             config.tenant_id, config.initial_domain, len(standin.tenant.mailboxes))
    while not stop.wait(0.5):
        pass
    log.info("stopping")
    standin.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
