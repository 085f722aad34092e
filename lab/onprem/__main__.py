"""`python -m lab.onprem --config FILE`: serve until SIGTERM or SIGINT, then exit 0."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from pathlib import Path

from lab.onprem.config import OnpremConfig
from lab.onprem.server import OnpremStandIn


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.onprem", description=__doc__)
    parser.add_argument("--config", type=Path, required=True, help="OnpremConfig JSON file")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    stand_in = OnpremStandIn(OnpremConfig.from_file(args.config))
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    stand_in.start()
    print(json.dumps({"ready": True, "http_port": stand_in.http_port,
                      "https_port": stand_in.https_port}), flush=True)
    stop.wait()
    stand_in.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
