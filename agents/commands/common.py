"""What the commands share: loading the configuration, printing, failing cleanly."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from rich.console import Console

from agents.runtime.config import HomeboundConfig, load_config

__all__ = ["CommandError", "config_from", "err", "out", "print_json"]

out = Console(soft_wrap=True)  # results, on stdout
err = Console(stderr=True, soft_wrap=True)  # progress and problems, on stderr


class CommandError(Exception):
    """A failure the user can act on; printed without a traceback."""

    def __init__(self, message: str, *, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def config_from(args: argparse.Namespace) -> HomeboundConfig:
    path: Path | None = getattr(args, "config", None)
    return load_config(path)


def print_json(document: Any) -> None:
    sys.stdout.write(json.dumps(document, default=str, ensure_ascii=False) + "\n")
    sys.stdout.flush()
