"""Generated documents: JSON Schema per event, AsyncAPI 3.0, RabbitMQ definitions.

Pure functions from the models and topology to JSON-ready dicts; the CLI
(`homebound contracts export [--check]`) writes or compares the files.
"""

from __future__ import annotations

import json
from typing import Any, Final

from contracts import SCHEMA_VERSION
from contracts.events import EVENT_MODELS
from contracts.topology import (
    AUDIT_STREAM,
    BINDINGS,
    DEAD_LETTER_EXCHANGE,
    DEFAULT_AUDIT_RETENTION,
    EVENTS_EXCHANGE,
    PUBLISHES,
    Agent,
    agent_queues,
    audit_stream,
    exchanges,
)

__all__ = ["GENERATED_FILES", "asyncapi", "definitions", "event_schemas", "render_all"]

PACKAGE_VERSION: Final = "0.1.0"


def event_schemas() -> dict[str, dict[str, Any]]:
    """One JSON Schema (draft 2020-12) per event type."""
    schemas = {}
    for type_name, model in sorted(EVENT_MODELS.items()):
        schema = model.model_json_schema(mode="validation")
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        schema["$id"] = f"https://homebound.example/schema/{type_name}.json"
        schemas[type_name] = schema
    return schemas


def _message_name(type_name: str) -> str:
    return "".join(part.capitalize() for part in type_name.replace(".", "_").split("_"))


def asyncapi() -> dict[str, Any]:
    """The event catalogue as an AsyncAPI 3.0 document."""
    schemas = event_schemas()
    channels: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    components_schemas: dict[str, Any] = {}
    for type_name, schema in schemas.items():
        name = _message_name(type_name)
        schema = {k: v for k, v in schema.items() if k not in ("$schema", "$id")}
        components_schemas[name] = schema
        messages[name] = {
            "name": type_name,
            "title": type_name,
            "contentType": "application/json",
            "payload": {"$ref": f"#/components/schemas/{name}"},
            "bindings": {"amqp": {"contentEncoding": "utf-8", "messageType": type_name,
                                  "bindingVersion": "0.3.0"}},
        }
        channels[name] = {
            "address": type_name,
            "messages": {name: {"$ref": f"#/components/messages/{name}"}},
            "bindings": {"amqp": {
                "is": "routingKey",
                "exchange": {"name": EVENTS_EXCHANGE, "type": "topic", "durable": True,
                             "autoDelete": False, "vhost": "/"},
                "bindingVersion": "0.3.0",
            }},
        }
    operations: dict[str, Any] = {}
    for producer, types in PUBLISHES.items():
        for type_name in types:
            name = _message_name(type_name)
            operations[f"{producer}.publishes.{name}"] = {
                "action": "send", "channel": {"$ref": f"#/channels/{name}"},
                "summary": f"{producer} publishes {type_name}",
                "bindings": {"amqp": {"deliveryMode": 2, "mandatory": True, "userId": producer,
                                      "bindingVersion": "0.3.0"}},
            }
    for agent, types in BINDINGS.items():
        for type_name in types:
            name = _message_name(type_name)
            operations[f"{agent.value}.consumes.{name}"] = {
                "action": "receive", "channel": {"$ref": f"#/channels/{name}"},
                "summary": f"{agent.value} consumes {type_name} from queue homebound.{agent.value}",
                "bindings": {"amqp": {"ack": True, "bindingVersion": "0.3.0"}},
            }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Homebound events",
            "version": f"{PACKAGE_VERSION}+schema.{SCHEMA_VERSION}",
            "description": (
                "Events exchanged by the Homebound agents over RabbitMQ. One topic exchange "
                f"({EVENTS_EXCHANGE}); the routing key is the event type. Every message is "
                "persistent JSON with the envelope below, published with confirms and mandatory."
            ),
        },
        "defaultContentType": "application/json",
        "servers": {"local": {"host": "127.0.0.1:5672", "protocol": "amqp", "protocolVersion": "0-9-1"}},
        "channels": channels,
        "operations": dict(sorted(operations.items())),
        "components": {"messages": messages, "schemas": components_schemas},
    }


def _agent_permissions(agent: str) -> dict[str, str]:
    own = rf"homebound\.{agent}(\..+)?"
    return {
        "configure": rf"^(homebound\.(events|dead-letter|audit)|{own})$",
        "write": rf"^(amq\.default|homebound\.(events|dead-letter|audit)|{own})$",
        "read": rf"^(homebound\.(events|dead-letter)|{own})$",
    }


def definitions(vhost: str = "/", *, audit_retention: str = DEFAULT_AUDIT_RETENTION) -> dict[str, Any]:
    """RabbitMQ definitions for `rabbitmqctl import_definitions` or the management API.

    Users are created without a usable password: set one per agent with
    `rabbitmqctl change_password homebound-<agent> ...` (never in a file).
    """
    queues = [audit_stream()]
    for agent in Agent:
        queues.extend(agent_queues(agent))
    users = [f"homebound-{agent.value}" for agent in Agent] + ["homebound-operator"]
    permissions = [
        {"user": f"homebound-{agent.value}", "vhost": vhost, **_agent_permissions(agent.value)}
        for agent in Agent
    ]
    permissions.append({"user": "homebound-operator", "vhost": vhost,
                        "configure": r"^homebound\..*$", "write": r"^(amq\.default|homebound\..*)$",
                        "read": r"^homebound\..*$"})
    return {
        "rabbit_version": "3.10.8",
        "users": [{"name": name, "password_hash": "",
                   "hashing_algorithm": "rabbit_password_hashing_sha256", "tags": []} for name in users],
        "vhosts": [{"name": vhost}],
        "permissions": permissions,
        "exchanges": [
            {"name": e.name, "vhost": vhost, "type": e.type, "durable": True, "auto_delete": False,
             "internal": False, "arguments": {}} for e in exchanges()
        ],
        "queues": [
            {"name": q.name, "vhost": vhost, "durable": True, "auto_delete": False,
             "arguments": dict(q.arguments)} for q in queues
        ],
        "bindings": [
            {"source": exchange, "vhost": vhost, "destination": q.name, "destination_type": "queue",
             "routing_key": key, "arguments": {}}
            for q in queues for exchange, key in q.bindings
        ],
        "policies": [{
            "vhost": vhost, "name": "homebound-audit-retention",
            "pattern": rf"^{AUDIT_STREAM.replace('.', '[.]')}$",
            "apply-to": "queues", "priority": 10, "definition": {"max-age": audit_retention},
        }],
        "_comment": (f"generated by `homebound contracts export`; "
                     f"dead letters go through {DEAD_LETTER_EXCHANGE}"),
    }


# path relative to the project root -> document
GENERATED_FILES: Final = ("contracts/schema/", "contracts/asyncapi.json", "deploy/rabbitmq/definitions.json")


def render_all() -> dict[str, str]:
    """Every generated file: relative path -> text (stable: sorted keys, trailing newline)."""
    def dump(document: Any) -> str:
        return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"

    files = {f"contracts/schema/{name}.json": dump(schema) for name, schema in event_schemas().items()}
    files["contracts/asyncapi.json"] = dump(asyncapi())
    files["deploy/rabbitmq/definitions.json"] = dump(definitions())
    return files
