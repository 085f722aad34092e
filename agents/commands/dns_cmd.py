"""`homebound dns show | rollback`: the records the cutover changes, and the way back.

`rollback` asks the dns-cutover agent (it alone holds the records from before
the wave) and, with `--wait`, waits for its answer on a temporary queue bound
before the request is published, so an answer cannot slip past.
"""

from __future__ import annotations

import argparse
import dataclasses
import getpass
import json
import time
from typing import Any

import pika.exceptions
import pydantic

from agents.commands.common import CommandError, config_from, err, out, print_json
from agents.runtime.config import HomeboundConfig
from agents.runtime.runner import amqp_settings
from contracts.envelope import new_event
from contracts.events import DnsRecordSet, WaveRollbackRequested, WaveRollbackRequestedData
from contracts.topology import EVENTS_EXCHANGE, Agent, queues_for
from events.amqp import AmqpSettings, connect_blocking
from events.declare import declare
from events.errors import PublishError
from events.publisher import Publisher

ANSWERS = ("wave.rolled_back", "wave.failed")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("dns", help="show the mail records; roll a wave's DNS cutover back")
    sub = parser.add_subparsers(dest="dns_command", required=True, metavar="COMMAND")
    show = sub.add_parser("show", help="MX, SPF and autodiscover as the configured DNS server answers")
    show.add_argument("--domain", required=True, help="the mail domain, e.g. fabrikam.example")
    show.add_argument("--json", action="store_true", help="one JSON object")
    show.set_defaults(run=run_show)
    back = sub.add_parser(
        "rollback", help="restore MX, SPF and autodiscover as they were before a wave",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "Publishes wave.rollback_requested; the dns-cutover agent restores the records\n"
            "it recorded before the wave changed anything (TTLs included) and answers with\n"
            "wave.rolled_back. Resolvers that cached the on-prem MX keep it for up to its TTL.\n\n"
            "example:\n  homebound dns rollback --wave w-20261204-1a2b --wait 60\n"
        ),
    )
    back.add_argument("--wave", required=True, help="wave id")
    back.add_argument("--wait", type=float, metavar="SECONDS",
                      help="wait this long for the agent's answer and print what was restored")
    back.set_defaults(run=run_rollback)


# --------------------------------------------------------------------------- show


def run_show(args: argparse.Namespace) -> int:
    from agents.dns_cutover import plan, spf
    from agents.dns_cutover.factory import dns_server
    from agents.dns_cutover.ports import DnsError, Rrset

    config = config_from(args)
    server = dns_server(config)
    try:
        records = server.read(args.domain.strip().rstrip(".").lower())
    except DnsError as exc:
        raise CommandError(exc.reason) from None
    current = plan.record_set(dataclasses.replace(records, txt=Rrset()))  # SPF judged below
    problem, lookups = None, None
    try:
        text = spf.select_spf(records.txt.texts)
        if text is not None:
            current = plan.record_set(records)
            lookups = spf.parse(text).check_lookups().lookup_count
    except spf.SpfError as exc:
        problem = exc.reason
    document: dict[str, Any] = {"domain": records.domain, "server": server.where,
                                **current.model_dump(), "spf_lookups": lookups, "spf_problem": problem,
                                "spf_records": [t for t in records.txt.texts if spf.is_spf(t)]}
    if args.json:
        print_json(document)
        return 0
    out.print(f"{records.domain} as {server.where} answers:", highlight=False)
    for line in describe(current):
        out.print(f"  {line}", highlight=False, markup=False)
    if problem:
        out.print(f"  [red]SPF invalid:[/red] {problem}", highlight=False)
    elif lookups is not None:
        out.print(f"  SPF valid: {lookups} of {spf.MAX_LOOKUPS} DNS lookups", highlight=False)
    if config.gateway is not None:
        on_prem = current.mx == [(0, config.gateway.host)]
        out.print(f"  MX points {'on-prem' if on_prem else 'elsewhere'} "
                  f"(gateway {config.gateway.host})", highlight=False)
    return 0


def describe(records: DnsRecordSet) -> list[str]:
    """The records in plain lines, TTLs included."""
    mx = ", ".join(f"{preference} {host}" for preference, host in records.mx) or "none"
    return [
        f"MX ({records.mx_ttl} s): {mx}",
        f"SPF ({records.spf_ttl} s): {records.spf}" if records.spf is not None else "SPF: none",
        f"autodiscover ({records.autodiscover_ttl} s): CNAME {records.autodiscover}"
        if records.autodiscover is not None else "autodiscover: no CNAME",
    ]


# --------------------------------------------------------------------------- rollback


def run_rollback(args: argparse.Namespace) -> int:
    config = config_from(args)
    try:
        request = new_event(WaveRollbackRequested, wave_id=args.wave, producer="cli",
                            data=WaveRollbackRequestedData(requested_by=getpass.getuser()[:256]))
    except pydantic.ValidationError:
        raise CommandError(f"not a wave id: {args.wave!r}", code=2) from None
    settings = amqp_settings(config, "homebound dns rollback")
    connection = connect_blocking(settings, give_up_after=15)
    try:
        channel = connection.channel()
        answers = _answer_queue(channel)
        _publish(config, request)
        if args.wait is None:
            out.print(f"rollback of wave {args.wave} requested; `homebound events tail --wave "
                      f"{args.wave} --type wave.rolled_back` shows the answer", highlight=False)
            return 0
        err.print(f"rollback of wave {args.wave} requested; waiting up to {args.wait:g} s ...")
        answer = _wait_for_answer(channel, answers, str(request.event_id), args.wait)
    finally:
        if connection.is_open:
            connection.close()
    return _report(args.wave, answer, args.wait)


def _answer_queue(channel: Any) -> str:
    """A temporary queue for the agent's answer, bound before the request goes out."""
    declare(channel, [])
    try:
        channel.queue_declare(queues_for(Agent.DNS_CUTOVER.value).work, passive=True)
    except pika.exceptions.ChannelClosedByBroker as exc:
        if exc.reply_code == 404:
            raise CommandError("the dns-cutover agent has never run against this broker (no queue "
                               f"{queues_for(Agent.DNS_CUTOVER.value).work}): start it first") from None
        raise
    queue: str = channel.queue_declare("", exclusive=True, auto_delete=True).method.queue
    for routing_key in ANSWERS:
        channel.queue_bind(queue, EVENTS_EXCHANGE, routing_key)
    return queue


def _publish(config: HomeboundConfig, request: WaveRollbackRequested) -> None:
    settings: AmqpSettings = amqp_settings(config, "homebound dns rollback publisher")
    try:
        with Publisher(settings, connect_timeout=15) as publisher:
            publisher.publish_events([request], timeout=30)
    except PublishError as exc:
        raise CommandError(f"the rollback request was not accepted by RabbitMQ: {exc}") from None


def _wait_for_answer(channel: Any, queue: str, request_id: str, seconds: float) -> dict[str, Any] | None:
    deadline = time.monotonic() + seconds
    for method, _props, body in channel.consume(queue, auto_ack=True, inactivity_timeout=0.25):
        if method is not None:
            event = json.loads(body)
            if event.get("causation_id") == request_id:
                channel.cancel()
                return dict(event)
        if time.monotonic() >= deadline:
            break
    channel.cancel()
    return None


def _report(wave: str, answer: dict[str, Any] | None, waited: float) -> int:
    if answer is None:
        raise CommandError(f"no answer from the dns-cutover agent within {waited:g} s; the request stays "
                           f"queued: check the agent, then `homebound events tail --wave {wave}`")
    data = answer.get("data", {})
    if answer.get("type") == "wave.failed":
        raise CommandError(f"rollback of wave {wave} failed ({data.get('error_class')}): "
                           f"{data.get('reason')}\n  {data.get('remediation', '')}".rstrip())
    restored = DnsRecordSet.model_validate(data["restored"])
    out.print(f"rolled back wave {wave}: {data['domain']} restored to", highlight=False)
    for line in describe(restored):
        out.print(f"  {line}", highlight=False, markup=False)
    for change in data.get("changes", []):
        out.print(f"  - {change}", highlight=False, markup=False)
    return 0
