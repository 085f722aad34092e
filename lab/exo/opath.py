"""A small OPATH subset for `-Filter`: comparisons joined by -and/-or/-not, parentheses.

Supported: ``Prop -eq|-ne|-like|-notlike 'value'`` with single-quoted strings
(``''`` escapes a quote), double-quoted strings, ``$true``/``$false``/``$null``
and bare numbers; ``*`` is the only wildcard, as in Exchange. Multi-valued
properties (EmailAddresses) match when any value matches; for proxy addresses
both ``smtp:a@b`` and ``a@b`` are compared. The filter is parsed, never run.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from lab.exo import errors

__all__ = ["compile_filter"]

Predicate = Callable[[Mapping[str, Any]], bool]
_OPERATORS = ("-eq", "-ne", "-like", "-notlike")
_PROXY_RE = re.compile(r"^[A-Za-z0-9]{1,9}:")


@dataclass(frozen=True)
class _Token:
    kind: str  # "(" ")" "op" "string" "word"
    text: str
    position: int


def _syntax_error(text: str, position: int) -> errors.CmdletError:
    return errors.parameter_binding(
        "Cannot bind parameter 'Filter' to the target. Exception setting \"Filter\": "
        "\"Invalid filter syntax. For a description of the filter parameter syntax see the "
        f"command help.\n\"{text}\" at position {position + 1}.\""
    )


def _tokens(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    i = 0
    while i < len(text):
        c = text[i]
        if c.isspace():
            i += 1
        elif c in "()":
            tokens.append(_Token(c, c, i))
            i += 1
        elif c in "'\"":
            j, chunks = i + 1, []
            while True:
                k = text.find(c, j)
                if k < 0:
                    raise _syntax_error(text, i)
                chunks.append(text[j:k])
                if text[k + 1:k + 2] == c:  # doubled quote: a literal quote
                    chunks.append(c)
                    j = k + 2
                    continue
                break
            tokens.append(_Token("string", "".join(chunks), i))
            i = k + 1
        else:
            match = re.compile(r"[^\s()'\"]+").match(text, i)
            assert match is not None
            word = match.group(0)
            kind = "op" if word.startswith("-") and word[1:].isalpha() else "word"
            tokens.append(_Token(kind, word, i))
            i = match.end()
    return tokens


def _as_texts(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, list | tuple):
        out: list[str] = []
        for item in value:
            out.extend(_as_texts(item))
        return out
    if isinstance(value, bool):
        return ["True" if value else "False"]
    if isinstance(value, uuid.UUID | int | float):
        return [str(value)]
    if isinstance(value, datetime):
        return [value.isoformat()]
    text = str(value)
    if _PROXY_RE.match(text):
        return [text, text.split(":", 1)[1]]
    return [text]


def _wildcard(pattern: str) -> re.Pattern[str]:
    return re.compile(".*".join(re.escape(p) for p in pattern.split("*")),
                      re.IGNORECASE | re.DOTALL)


def _comparison(prop: str, op: str, literal: Any) -> Predicate:
    negate = op in ("-ne", "-notlike")

    def matches(record: Mapping[str, Any]) -> bool:
        value = record.get(prop)
        if literal is None:
            hit = value is None or value == [] or value == ""
        elif isinstance(literal, bool):
            hit = value is literal
        else:
            texts = _as_texts(value)
            if op in ("-like", "-notlike"):
                rx = _wildcard(str(literal))
                hit = any(rx.fullmatch(t) for t in texts)
            else:
                hit = any(t.lower() == str(literal).lower() for t in texts)
        return hit != negate

    return matches


class _Parser:
    def __init__(self, text: str, properties: Mapping[str, str]) -> None:
        self.text = text
        self.tokens = _tokens(text)
        self.i = 0
        self.properties = properties  # lower-case name -> record key

    def peek(self) -> _Token | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self) -> _Token:
        token = self.peek()
        if token is None:
            raise _syntax_error(self.text, len(self.text))
        self.i += 1
        return token

    def expression(self) -> Predicate:
        parts = [self.term()]
        while (t := self.peek()) is not None and t.kind == "op" and t.text.lower() == "-or":
            self.i += 1
            parts.append(self.term())
        return parts[0] if len(parts) == 1 else (lambda r: any(p(r) for p in parts))

    def term(self) -> Predicate:
        parts = [self.factor()]
        while (t := self.peek()) is not None and t.kind == "op" and t.text.lower() == "-and":
            self.i += 1
            parts.append(self.factor())
        return parts[0] if len(parts) == 1 else (lambda r: all(p(r) for p in parts))

    def factor(self) -> Predicate:
        token = self.take()
        if token.kind == "op" and token.text.lower() == "-not":
            inner = self.factor()
            return lambda r: not inner(r)
        if token.kind == "(":
            inner = self.expression()
            if self.take().kind != ")":
                raise _syntax_error(self.text, token.position)
            return inner
        if token.kind != "word":
            raise _syntax_error(self.text, token.position)
        key = self.properties.get(token.text.lower())
        if key is None:
            raise errors.parameter_binding(
                "Cannot bind parameter 'Filter' to the target. Exception setting \"Filter\": "
                f"\"\"{token.text}\" is not a recognized filterable property. For a list of "
                "filterable properties, see the command help.\""
            )
        op = self.take()
        if op.kind != "op" or op.text.lower() not in _OPERATORS:
            raise _syntax_error(self.text, op.position)
        return _comparison(key, op.text.lower(), self.literal())

    def literal(self) -> Any:
        token = self.take()
        if token.kind == "string":
            return token.text
        if token.kind != "word":
            raise _syntax_error(self.text, token.position)
        special = {"$true": True, "$false": False, "$null": None}
        if token.text.lower() in special:
            return special[token.text.lower()]
        if token.text.startswith("$"):
            raise _syntax_error(self.text, token.position)  # variables are not expanded
        return token.text


def compile_filter(text: str, properties: Mapping[str, str]) -> Predicate:
    """Parse *text* into a predicate over output records whose keys are *properties*' values."""
    body = text.strip()
    if body.startswith("{") and body.endswith("}"):
        body = body[1:-1]
    parser = _Parser(body, properties)
    if not parser.tokens:
        raise _syntax_error(body, 0)
    predicate = parser.expression()
    if parser.peek() is not None:
        raise _syntax_error(body, parser.tokens[parser.i].position)
    return predicate
