"""HTTP rule path templates: parse once, match many times. Pure.

Grammar (google/api/http.proto)::

    Template = "/" Segments [ Verb ] ;
    Segments = Segment { "/" Segment } ;
    Segment  = "*" | "**" | LITERAL | Variable ;
    Variable = "{" FieldPath [ "=" Segments ] "}" ;
    FieldPath = IDENT { "." IDENT } ;
    Verb     = ":" LITERAL ;

A template is flattened into slots (one per path segment); a variable remembers
the range of slots it covers. `**` may only be the last segment. The verb is
the text after the last `:` of the final segment of the template, and a request
matches a verb template only if its raw last segment ends in `:<verb>`.

Captured values are percent-decoded; a variable spanning several segments
keeps `%2F` encoded so its `/` separators stay unambiguous (the spec's
reserved expansion rule).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum
from urllib.parse import unquote

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_LITERAL = re.compile(r"^[^/{}*=:]+$")


class TemplateError(ValueError):
    """A path template that does not follow the grammar."""


class SlotKind(Enum):
    """What one template segment accepts."""

    LITERAL = "literal"
    STAR = "*"
    DEEP = "**"


@dataclass(frozen=True)
class Slot:
    """One segment of a template."""

    kind: SlotKind
    literal: str = ""


@dataclass(frozen=True)
class Variable:
    """A captured field path and the slot range [start, end) it covers."""

    field_path: str
    start: int
    end: int


@dataclass(frozen=True)
class Template:
    """A parsed path template."""

    source: str
    slots: tuple[Slot, ...]
    variables: tuple[Variable, ...]
    verb: str

    @property
    def shape(self) -> str:
        """The template with variable names erased: equal shapes match equal paths."""
        parts = [s.literal if s.kind is SlotKind.LITERAL else s.kind.value for s in self.slots]
        return "/" + "/".join(parts) + (":" + self.verb if self.verb else "")

    @property
    def specificity(self) -> tuple[int, ...]:
        """A sort key: smaller is more specific (verbs, then literals, win)."""
        rank = {SlotKind.LITERAL: 0, SlotKind.STAR: 1, SlotKind.DEEP: 2}
        return (0 if self.verb else 1, *(rank[s.kind] for s in self.slots), 3)

    def match(self, raw_path: str) -> dict[str, str] | None:
        """Match a raw (still percent-encoded) request path; None when it does not fit."""
        if not raw_path.startswith("/"):
            return None
        segments = raw_path[1:].split("/")
        if self.verb:
            suffix = ":" + self.verb
            last = segments[-1]
            if not last.endswith(suffix) or len(last) == len(suffix):
                return None
            segments[-1] = last[: -len(suffix)]
        if not _fits(self.slots, segments):
            return None
        captured: dict[str, str] = {}
        for var in self.variables:
            end = len(segments) if self.slots[var.end - 1].kind is SlotKind.DEEP else var.end
            raw = segments[var.start : end]
            if var.end - var.start == 1 and self.slots[var.start].kind is SlotKind.STAR:
                captured[var.field_path] = unquote(raw[0])
            else:
                captured[var.field_path] = "/".join(_unquote_keep_slash(s) for s in raw)
        return captured


def _fits(slots: tuple[Slot, ...], segments: list[str]) -> bool:
    deep = bool(slots) and slots[-1].kind is SlotKind.DEEP
    fixed = len(slots) - 1 if deep else len(slots)
    if len(segments) < fixed or (not deep and len(segments) != fixed):
        return False
    for slot, segment in zip(slots[:fixed], segments, strict=False):
        if slot.kind is SlotKind.LITERAL:
            if unquote(segment) != slot.literal:
                return False
        elif segment == "":
            return False
    return True


def _unquote_keep_slash(segment: str) -> str:
    return "%2F".join(unquote(part) for part in re.split("%2[Ff]", segment))


def parse_template(source: str) -> Template:
    """Parse an http rule path; raise TemplateError naming the problem."""
    if not source.startswith("/"):
        raise TemplateError(f"path template {source!r} must start with '/'")
    body, verb = _split_verb(source)
    slots: list[Slot] = []
    variables: list[Variable] = []
    for token in _tokens(body[1:], source):
        if token.startswith("{"):
            inner = token[1:-1]
            field_path, _, sub = inner.partition("=")
            if not all(_IDENT.match(p) for p in field_path.split(".")):
                raise TemplateError(f"bad field path {field_path!r} in {source!r}")
            start = len(slots)
            for part in (sub or "*").split("/"):
                slots.append(_slot(part, source))
            variables.append(Variable(field_path, start, len(slots)))
        else:
            slots.append(_slot(token, source))
    for i, slot in enumerate(slots):
        if slot.kind is SlotKind.DEEP and i != len(slots) - 1:
            raise TemplateError(f"'**' must be the last segment in {source!r}")
    names = [v.field_path for v in variables]
    if len(set(names)) != len(names):
        raise TemplateError(f"a field is bound twice in {source!r}")
    return Template(source, tuple(slots), tuple(variables), verb)


def _split_verb(source: str) -> tuple[str, str]:
    last_slash = source.rfind("/")
    last_brace = source.rfind("}")
    colon = source.rfind(":")
    if colon > last_slash and colon > last_brace:
        verb = source[colon + 1 :]
        if not _LITERAL.match(verb):
            raise TemplateError(f"bad verb {verb!r} in {source!r}")
        return source[:colon], verb
    return source, ""


def _tokens(body: str, source: str) -> list[str]:
    """Split on '/' outside braces; each token is a segment or a whole variable."""
    tokens: list[str] = []
    current = ""
    depth = 0
    for char in body:
        if char == "{":
            if depth:
                raise TemplateError(f"nested variables in {source!r}")
            depth = 1
        elif char == "}":
            if not depth:
                raise TemplateError(f"unbalanced '}}' in {source!r}")
            depth = 0
        if char == "/" and not depth:
            tokens.append(current)
            current = ""
        else:
            current += char
    if depth:
        raise TemplateError(f"unclosed '{{' in {source!r}")
    tokens.append(current)
    for token in tokens:
        if token.startswith("{") != token.endswith("}") or ("{" in token[1:]):
            raise TemplateError(f"bad segment {token!r} in {source!r}")
    return tokens


def _slot(text: str, source: str) -> Slot:
    if text == "*":
        return Slot(SlotKind.STAR)
    if text == "**":
        return Slot(SlotKind.DEEP)
    if not _LITERAL.match(text):
        raise TemplateError(f"bad segment {text!r} in {source!r}")
    return Slot(SlotKind.LITERAL, text)
