"""`homebound agent <name>`: run one agent in the foreground."""

from __future__ import annotations

import argparse

from agents.commands.common import config_from
from agents.runtime.logging import configure_logging
from agents.runtime.runner import AGENT_FACTORIES, run_agent


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "agent", help="run one agent (consumes until SIGTERM)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "Run one agent in the foreground. It declares its queues, consumes its\n"
            "events and logs JSON lines to stderr. SIGTERM or Ctrl-C stops it\n"
            "gracefully: no new messages, handlers in flight finish and are acked.\n\n"
            "agents:\n"
            "  cloud-exporter         prepares Exchange Online, exports the mailboxes\n"
            "  ad-provisioner         matches or creates the Active Directory accounts\n"
            "  exchange-configurator  prepares on-prem Exchange, mail-enables the accounts\n"
            "  migration-monitor      starts, paces and watches the moves\n"
            "  dns-cutover            widens SPF before, switches MX after\n"
        ),
    )
    parser.add_argument("name", choices=sorted(AGENT_FACTORIES), metavar="NAME",
                        help="which agent: " + ", ".join(sorted(AGENT_FACTORIES)))
    parser.add_argument("--log-format", choices=["json", "console"], default=None,
                        help="override [runtime] log_format")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    config = config_from(args)
    configure_logging(config.runtime.log_level, args.log_format or config.runtime.log_format)
    return run_agent(args.name, config)
