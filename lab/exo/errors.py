"""Errors in the shapes the product parses: Exchange's cmdlet errors and Azure AD's.

Exchange (admin API)::

    {"error": {"code": "NotFound", "message": "Error executing cmdlet",
               "details": [{"code": "Client",
                            "message": "Ex6F9304|<exception type>|<text>"}],
               "innererror": {...}}}

The product splits ``details[].message`` on ``|`` to get the exception type,
which is how it classifies a failure; the texts below are Exchange's.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime
from typing import Any, Final

__all__ = [
    "AadError",
    "CmdletError",
    "already_exists",
    "ambiguous",
    "bad_request",
    "command_not_found",
    "not_found",
    "parameter_binding",
]

# the "domain controller" Exchange Online names in not-found messages
DIRECTORY_SERVER: Final = "EURPR01A001.prod.outlook.com"

NOT_FOUND: Final = "Microsoft.Exchange.Configuration.Tasks.ManagementObjectNotFoundException"
AMBIGUOUS: Final = "Microsoft.Exchange.Configuration.Tasks.ManagementObjectAmbiguousException"
ALREADY_EXISTS: Final = "Microsoft.Exchange.Configuration.Tasks.ManagementObjectAlreadyExistsException"
PARAMETER_BINDING: Final = "System.Management.Automation.ParameterBindingException"
COMMAND_NOT_FOUND: Final = "System.Management.Automation.CommandNotFoundException"
TASK: Final = "Microsoft.Exchange.Configuration.Tasks.TaskException"


def _exchange_code(exception_type: str) -> str:
    """Exchange prefixes each error with a short code; ours is stable per exception type."""
    return "Ex" + hashlib.sha256(exception_type.encode()).hexdigest()[:6].upper()


class CmdletError(Exception):
    """A cmdlet failed; rendered as Exchange's error body with *status*."""

    def __init__(self, exception_type: str, message: str, *, code: str = "BadRequest",
                 status: int = 400) -> None:
        super().__init__(message)
        self.exception_type = exception_type
        self.message = message
        self.code = code
        self.status = status

    def body(self) -> dict[str, Any]:
        detail = f"{_exchange_code(self.exception_type)}|{self.exception_type}|{self.message}"
        return {"error": {
            "code": self.code,
            "message": "Error executing cmdlet",
            "details": [{"code": "Client", "target": "", "message": detail}],
            "innererror": {
                "message": self.message,
                "type": "Microsoft.Exchange.Admin.OData.Core.ODataServiceException",
                "stacktrace": "",
                "internalexception": {"message": self.message, "type": self.exception_type,
                                      "stacktrace": ""},
            },
        }}


def not_found(identity: str) -> CmdletError:
    return CmdletError(
        NOT_FOUND,
        f"The operation couldn't be performed because object '{identity}' couldn't be found "
        f"on '{DIRECTORY_SERVER}'.",
        code="NotFound", status=404,
    )


def ambiguous(identity: str) -> CmdletError:
    return CmdletError(
        AMBIGUOUS,
        f"The operation couldn't be performed because '{identity}' matches multiple entries.",
    )


def already_exists(message: str) -> CmdletError:
    return CmdletError(ALREADY_EXISTS, message)


def bad_request(message: str, exception_type: str = TASK) -> CmdletError:
    return CmdletError(exception_type, message)


def parameter_binding(message: str) -> CmdletError:
    return CmdletError(PARAMETER_BINDING, message)


def command_not_found(name: str) -> CmdletError:
    return CmdletError(
        COMMAND_NOT_FOUND,
        f"The term '{name}' is not recognized as a name of a cmdlet, function, script file, "
        "or executable program. Check the spelling of the name, or if a path was included, "
        "verify that the path is correct and try again.",
    )


class AadError(Exception):
    """A token endpoint refusal, in Azure AD's body shape."""

    def __init__(self, status: int, error: str, code: int, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.error = error
        self.code = code
        self.description = description

    def body(self) -> dict[str, Any]:
        trace_id = str(uuid.uuid4())
        correlation_id = str(uuid.uuid4())
        now = datetime.now(UTC)
        stamp = now.strftime("%Y-%m-%d %H:%M:%SZ")
        return {
            "error": self.error,
            "error_description": (f"AADSTS{self.code}: {self.description} Trace ID: {trace_id} "
                                  f"Correlation ID: {correlation_id} Timestamp: {stamp}"),
            "error_codes": [self.code],
            "timestamp": stamp,
            "trace_id": trace_id,
            "correlation_id": correlation_id,
            "error_uri": "https://login.microsoftonline.com/error?code=" + str(self.code),
        }
