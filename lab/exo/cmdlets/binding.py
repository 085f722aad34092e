"""Parameter binding: the JSON `Parameters` object to typed values, as PowerShell would.

Names match case-insensitively; an unknown name or a value that does not
convert is a ParameterBindingException with PowerShell's wording. Values are
data: strings are compared and stored, never evaluated. A credential's
password never appears in an error message.
"""

from __future__ import annotations

import base64
import binascii
import enum
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from lab.exo import errors

__all__ = ["UNLIMITED", "Bound", "Credential", "Kind", "Param", "bind"]

UNLIMITED = None  # what an "Unlimited" value binds to

COMMON_PARAMETERS = (
    "ErrorAction", "WarningAction", "InformationAction", "ErrorVariable", "WarningVariable",
    "InformationVariable", "OutVariable", "OutBuffer", "PipelineVariable", "Verbose", "Debug",
    "Confirm", "DomainController",
)


class Kind(enum.Enum):
    STRING = "System.String"
    STRINGS = "Microsoft.Exchange.Data.MultiValuedProperty"
    INT = "System.Int32"
    UNLIMITED = "Microsoft.Exchange.Data.Unlimited"
    SWITCH = "System.Management.Automation.SwitchParameter"
    BOOL = "System.Boolean"
    CREDENTIAL = "System.Management.Automation.PSCredential"
    BYTES = "System.Byte[]"
    DATETIME = "System.DateTime"
    GUID = "System.Guid"
    ENUM = "System.Enum"
    ANY = "System.Object"


@dataclass(frozen=True)
class Param:
    name: str
    kind: Kind = Kind.STRING
    required: bool = False
    choices: tuple[str, ...] = ()


@dataclass(frozen=True)
class Credential:
    username: str
    password: str = field(repr=False)


@dataclass(frozen=True)
class Bound:
    """Converted parameters by canonical name; absent ones are simply missing."""

    values: Mapping[str, Any]

    def __contains__(self, name: str) -> bool:
        return name in self.values

    def get(self, name: str, default: Any = None) -> Any:
        return self.values.get(name, default)

    def switch(self, name: str) -> bool:
        return bool(self.values.get(name, False))


def _cannot_convert(param: Param, value: Any, why: str) -> errors.CmdletError:
    shown = str(value)
    shown = shown if len(shown) <= 80 else shown[:77] + "..."
    return errors.parameter_binding(
        f"Cannot bind parameter '{param.name}'. Cannot convert value \"{shown}\" to type "
        f"\"{param.kind.value}\". Error: \"{why}\""
    )


def _no_prompt(param: Param) -> errors.CmdletError:
    return errors.parameter_binding(
        f"Cannot process argument transformation on parameter '{param.name}'. A command that "
        "prompts the user failed because the host program or the command type does not support "
        "user interaction. Pass a credential object: {\"UserName\": ..., \"Password\": ...}."
    )


def _to_bool(param: Param, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if value is None and param.kind is Kind.SWITCH:
        return True
    if isinstance(value, str) and value.strip().lower().lstrip("$") in ("true", "false"):
        return value.strip().lower().lstrip("$") == "true"
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise _cannot_convert(param, value, "Only true or false are accepted.")


def _to_strings(param: Param, value: Any) -> list[str]:
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    if isinstance(value, list | tuple) and all(isinstance(v, str | int) for v in value):
        return [str(v).strip() for v in value if str(v).strip()]
    raise _cannot_convert(param, value, "Expected a string or a list of strings.")


def _to_datetime(param: Param, value: Any) -> datetime:
    if isinstance(value, str):
        text = value.strip()
        match = re.fullmatch(r"/Date\((-?\d+)\)/", text)
        try:
            parsed = (datetime.fromtimestamp(int(match.group(1)) / 1000, UTC) if match
                      else datetime.fromisoformat(text))
        except ValueError:
            raise _cannot_convert(param, value, "String was not recognized as a valid "
                                                "DateTime.") from None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    raise _cannot_convert(param, value, "String was not recognized as a valid DateTime.")


def _to_bytes(param: Param, value: Any) -> bytes:
    if isinstance(value, list) and all(isinstance(v, int) and 0 <= v <= 255 for v in value):
        return bytes(value)
    if isinstance(value, str):
        try:
            return base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            pass
    raise _cannot_convert(param, "System.Object", "Expected a base64 string or an array of bytes.")


def _to_credential(param: Param, value: Any) -> Credential:
    if isinstance(value, Mapping):
        lowered = {str(k).lower(): v for k, v in value.items()}
        user, secret = lowered.get("username"), lowered.get("password")
        if isinstance(user, str) and user and isinstance(secret, str):
            return Credential(user, secret)
    raise _no_prompt(param)


def _convert(param: Param, value: Any) -> Any:
    kind = param.kind
    if kind is Kind.ANY:
        return value
    if kind is Kind.SWITCH or kind is Kind.BOOL:
        return _to_bool(param, value)
    if kind is Kind.CREDENTIAL:
        return _to_credential(param, value)
    if kind is Kind.STRINGS:
        return _to_strings(param, value)
    if kind is Kind.BYTES:
        return _to_bytes(param, value)
    if kind is Kind.DATETIME:
        return _to_datetime(param, value)
    if isinstance(value, list | dict):
        raise _cannot_convert(param, value, "A single value is expected.")
    if kind is Kind.STRING:
        if value is None:
            raise _cannot_convert(param, "", "The argument is null.")
        return str(value)
    if kind is Kind.GUID:
        try:
            return uuid.UUID(str(value).strip("{}"))
        except ValueError:
            raise _cannot_convert(param, value, "Unrecognized Guid format.") from None
    if kind is Kind.UNLIMITED and str(value).strip().lower() == "unlimited":
        return UNLIMITED
    if kind in (Kind.INT, Kind.UNLIMITED):
        try:
            number = int(str(value).strip())
        except ValueError:
            raise _cannot_convert(param, value, "Input string was not in a correct format.") from None
        if number < 0:
            raise _cannot_convert(param, value, "The value must not be negative.")
        return number
    if kind is Kind.ENUM:
        for choice in param.choices:
            if str(value).strip().lower() == choice.lower():
                return choice
        raise _cannot_convert(param, value, "Unable to match the identifier name "
                                            f"{str(value)[:40]} to a valid enumerator name. "
                                            f"Specify one of: {', '.join(param.choices)}.")
    raise AssertionError(kind)


def bind(cmdlet: str, spec: Mapping[str, Param], raw: Any) -> Bound:
    """Convert *raw* (the request's Parameters object) against *spec* (lower-case keys)."""
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise errors.parameter_binding("Parameters must be a JSON object of name: value.")
    common = {c.lower() for c in COMMON_PARAMETERS}
    values: dict[str, Any] = {}
    for name, value in raw.items():
        param = spec.get(str(name).lower())
        if param is None:
            if str(name).lower() in common:
                continue
            raise errors.parameter_binding(
                f"A parameter cannot be found that matches parameter name '{str(name)[:80]}'."
            )
        values[param.name] = _convert(param, value)
    missing = [p.name for p in spec.values() if p.required and p.name not in values]
    if missing:
        raise errors.parameter_binding(
            f"{cmdlet}: Cannot process command because of one or more missing mandatory "
            f"parameters: {' '.join(missing)}."
        )
    return Bound(values)
