"""What a WinRS command line means to the stand-in, and how PowerShell reports failures.

The stand-in runs nothing but `powershell[.exe] [-NoProfile] [-NonInteractive]
[-NoLogo] [-ExecutionPolicy <any>] [-InputFormat|-OutputFormat Text]
-EncodedCommand <base64 of UTF-16-LE script>` (flag names case-insensitive,
`-enc`/`-ec`/`-e` too; `powershell -encodedcommand …` is what
`pywinrm.Session.run_ps` sends). It never interprets the script: it only
decodes it so the dispatcher can read the `# homebound-op:` header.

Command-line limit: WinRS starts commands through `cmd.exe /c` unless the
client sets WINRS_SKIP_CMD_SHELL, and cmd.exe refuses lines over 8,191
characters by printing "The command line is too long." and exiting with 1.
The stand-in answers exactly that (a completed command, not a fault); with
WINRS_SKIP_CMD_SHELL it applies CreateProcess's 32,767 instead.
"""

from __future__ import annotations

import base64
import binascii
import ntpath
import re
from dataclasses import dataclass
from xml.sax.saxutils import escape

__all__ = [
    "CMD_LINE_LIMIT",
    "CREATE_PROCESS_LIMIT",
    "CommandResult",
    "EncodedScript",
    "clixml_error",
    "failed",
    "first_command_word",
    "not_recognized",
    "parse_command_line",
]

CMD_LINE_LIMIT = 8191
CREATE_PROCESS_LIMIT = 32767
_SWITCHES = {"-noprofile", "-nop", "-noninteractive", "-noni", "-nologo"}
# options with a value that do not change what runs or how its output looks
_WITH_VALUE = {"-executionpolicy": None, "-ep": None, "-inputformat": "text", "-outputformat": "text"}
_ENCODED = {"-encodedcommand", "-enc", "-ec", "-e"}
_POWERSHELL = {"powershell", "powershell.exe"}


@dataclass(frozen=True)
class CommandResult:
    stdout: bytes
    stderr: bytes
    exit_code: int


@dataclass(frozen=True)
class EncodedScript:
    script: str


def clixml_error(message: str, error_type: str, category: str = "NotSpecified",
                 target: str = "") -> bytes:
    """stderr as powershell.exe writes an error record when its output is redirected."""
    lines = [
        message,
        f"    + CategoryInfo          : {category}: ({target}:String) [], {error_type}",
        f"    + FullyQualifiedErrorId : {error_type}",
        " ",
    ]
    parts = "".join(f'<S S="Error">{_clixml_text(line)}_x000D__x000A_</S>' for line in lines)
    return (
        '#< CLIXML\r\n<Objs Version="1.1.0.1" xmlns="http://schemas.microsoft.com/powershell/2004/04">'
        + parts + "</Objs>"
    ).encode("utf-8")


def _clixml_text(text: str) -> str:
    # CLIXML writes control characters as _xHHHH_; the rest is XML-escaped.
    encoded = "".join(f"_x{ord(c):04X}_" if ord(c) < 0x20 else c for c in text)
    return escape(encoded)


def failed(message: str, error_type: str, category: str = "NotSpecified", target: str = "") -> CommandResult:
    return CommandResult(b"", clixml_error(message, error_type, category, target), 1)


def not_recognized(term: str) -> CommandResult:
    return failed(
        f"The term '{term}' is not recognized as the name of a cmdlet, function, script file, "
        "or operable program. Check the spelling of the name, or if a path was included, verify "
        "that the path is correct and try again.",
        "CommandNotFoundException", "ObjectNotFound", term,
    )


def parse_command_line(command: str, arguments: list[str], *,
                       skip_cmd_shell: bool) -> EncodedScript | CommandResult:
    """The script an encoded PowerShell command carries, or the result of refusing the command."""
    line = " ".join([command, *arguments]).strip()
    limit = CREATE_PROCESS_LIMIT if skip_cmd_shell else CMD_LINE_LIMIT
    if len(line) > limit:
        return CommandResult(b"", b"The command line is too long.\r\n", 1)
    tokens = [token.strip('"') for token in line.split()]
    if not tokens:
        return not_recognized("")
    program = ntpath.basename(tokens[0]).lower()
    if program not in _POWERSHELL:
        return not_recognized(tokens[0][:80])
    encoded: str | None = None
    rest = tokens[1:]
    while rest:
        flag = rest.pop(0).lower()
        if flag in _SWITCHES:
            continue
        if flag in _WITH_VALUE and rest:
            value = rest.pop(0).lower()
            if _WITH_VALUE[flag] in (None, value):
                continue
            return failed(f"The stand-in accepts only '{flag} Text'.", "ParameterBindingException",
                          "InvalidArgument")
        if flag in _ENCODED and rest:
            encoded = rest.pop(0)
            if rest:  # anything after the script would be arguments PowerShell passes on
                return failed("The stand-in accepts no arguments after -EncodedCommand.",
                              "ParameterBindingException", "InvalidArgument")
            break
        return failed(
            f"The stand-in runs only encoded scripts: '{flag[:40]}' is not accepted "
            "(use -EncodedCommand).",
            "ParameterBindingException", "InvalidArgument",
        )
    if encoded is None:
        return failed("No -EncodedCommand given.", "ParameterBindingException", "InvalidArgument")
    try:
        script = base64.b64decode(encoded, validate=True).decode("utf-16-le")
    except (binascii.Error, ValueError):
        return failed(
            "Cannot process the command because the value specified with -EncodedCommand is not "
            "properly encoded. The value must be Base64 encoded.",
            "ParameterBindingException", "InvalidArgument",
        )
    return EncodedScript(script)


def first_command_word(script: str) -> str:
    """The word PowerShell would fail on first in a script the stand-in does not run."""
    words = [raw.strip().split()[0].rstrip(";") for raw in script.lstrip("\ufeff").splitlines()
             if raw.strip() and not raw.strip().startswith("#")]
    cmdlet = next((w for w in words if re.match(r"^[A-Za-z]+-[A-Za-z][\w.]*$", w)), None)
    return (cmdlet or (words[0] if words else "(empty script)"))[:80]
