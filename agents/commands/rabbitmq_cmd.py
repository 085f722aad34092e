"""`homebound rabbitmq apply`: declare the whole topology and its policies on a broker."""

from __future__ import annotations

import argparse
import urllib.parse

from agents.commands.common import config_from, err, out
from agents.runtime.runner import amqp_settings
from contracts.topology import AUDIT_STREAM, Agent, agent_queues
from events.admin import BrokerAdmin
from events.amqp import connect_blocking
from events.declare import declare


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("rabbitmq", help="set up the broker")
    sub = parser.add_subparsers(dest="rabbitmq_command", required=True, metavar="COMMAND")
    apply = sub.add_parser(
        "apply", help="declare exchanges, queues, bindings and the audit retention policy",
        description=("Declares everything every agent would declare, and sets the audit stream's "
                     "retention ([runtime] audit_retention) as a policy through the management API. "
                     "Idempotent. deploy/rabbitmq/definitions.json holds the same as a file."),
    )
    apply.set_defaults(run=run_apply)


def run_apply(args: argparse.Namespace) -> int:
    config = config_from(args)
    settings = amqp_settings(config, "homebound rabbitmq apply")
    connection = connect_blocking(settings, give_up_after=15)
    channel = connection.channel()
    queues = [spec for agent in Agent for spec in agent_queues(
        agent, retry_delays=tuple(config.runtime.retry_delays))]
    declare(channel, queues)
    connection.close()
    out.print(f"declared {len(queues) + 1} queues and their bindings on vhost {settings.vhost!r}")
    parsed = urllib.parse.urlparse(config.amqp.url)
    password = config.amqp.password.get_secret_value() if config.amqp.password else parsed.password
    with BrokerAdmin(config.amqp.management_url, username=parsed.username or "guest",
                     password=password or "guest") as admin:
        if not admin.has_api:
            err.print("the management API is not reachable: audit retention policy not set "
                      "(rabbitmq-plugins enable rabbitmq_management)")
            return 1
        pattern = rf"^{AUDIT_STREAM.replace('.', '[.]')}$"
        admin.set_policy(settings.vhost, "homebound-audit-retention", pattern,
                         {"max-age": config.runtime.audit_retention}, priority=10)
    out.print(f"audit stream retention: {config.runtime.audit_retention}")
    return 0
