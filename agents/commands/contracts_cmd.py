"""`homebound contracts export [--check]`: the generated schema, AsyncAPI and definitions."""

from __future__ import annotations

import argparse
from pathlib import Path

from agents.commands.common import err, out
from contracts.export import render_all

DEFAULT_ROOT = Path(__file__).resolve().parents[2]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "contracts", help="generate JSON Schema, AsyncAPI and RabbitMQ definitions",
        description="Work with the generated contract documents.",
    )
    sub = parser.add_subparsers(dest="contracts_command", required=True, metavar="COMMAND")
    export = sub.add_parser(
        "export", help="write (or check) the generated files",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "Write contracts/schema/<event>.json (one JSON Schema per event),\n"
            "contracts/asyncapi.json (AsyncAPI 3.0) and deploy/rabbitmq/definitions.json\n"
            "(exchanges, queues with their arguments, bindings, policies).\n\n"
            "With --check nothing is written: the command exits 1 and names every file\n"
            "that differs from what the code would generate (use it in CI)."
        ),
    )
    export.add_argument("--check", action="store_true", help="compare instead of writing")
    export.add_argument("--root", type=Path, default=DEFAULT_ROOT,
                        help="project root to write into (default: this checkout)")
    export.set_defaults(run=run_export)


def run_export(args: argparse.Namespace) -> int:
    root: Path = args.root
    files = render_all()
    stale_schema = sorted(
        p for p in (root / "contracts" / "schema").glob("*.json")
        if str(p.relative_to(root)) not in files
    ) if (root / "contracts" / "schema").exists() else []
    if args.check:
        differing = [path for path, text in files.items()
                     if not (root / path).exists() or (root / path).read_text() != text]
        differing += [str(p.relative_to(root)) + " (no longer generated)" for p in stale_schema]
        if differing:
            err.print("[red]generated contracts are out of date:[/red]")
            for path in differing:
                err.print(f"  {path}")
            err.print("run `homebound contracts export` and commit the result")
            return 1
        out.print(f"{len(files)} generated files are up to date")
        return 0
    for path, text in files.items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists() or target.read_text() != text:
            target.write_text(text)
            out.print(f"wrote {path}")
    for stale in stale_schema:
        stale.unlink()
        out.print(f"removed {stale.relative_to(root)}")
    return 0
