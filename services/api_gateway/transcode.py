"""Request side: path variables, query string, JSON body and headers -> request message.

Pure. The rules of the sfmesh dialect:

* path variables fill the fields their template binds;
* any other field may come from the query string (dotted paths, repeated keys
  append, enums by wire string / proto name / number, bools by `true`/`false`)
  or from a JSON object body, on any HTTP method;
* a field given in two places, an unknown key, a camelCase alias, a bad value
  or a body that is not a JSON object is a 400 naming the field;
* JSON `null` means "not given"; numeric strings are accepted for numbers;
* Struct / Value / ListValue take any JSON object / value / array;
* a field carrying `(sfmesh.v1.http_header)` is filled from that header.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, unquote_plus

import orjson
from google.protobuf import message_factory
from google.protobuf.descriptor import FieldDescriptor as FD
from google.protobuf.message import Message

from services.api_gateway import options, scalars
from services.api_gateway.errors import GatewayError
from services.api_gateway.marshal import WRAPPERS, is_map
from services.api_gateway.routes import Route
from services.api_gateway.types import FieldDescriptor, MessageDescriptor

Path = tuple[str, ...]

_JSON_KINDS = frozenset(
    {"google.protobuf.Struct", "google.protobuf.Value", "google.protobuf.ListValue"}
)


@dataclass(frozen=True)
class RequestParts:
    """What an HTTP request offers to fill a request message."""

    path_params: Mapping[str, str]
    query: str = ""
    body: bytes = b""
    headers: Mapping[str, str] | None = None
    """Lower-cased header names."""


def bad_request(message: str) -> GatewayError:
    """A 400 INVALID_ARGUMENT made by the gateway."""
    return GatewayError(400, message)


def build_request(route: Route, parts: RequestParts) -> Message:
    """Build the request message of `route`; raise GatewayError(400) on any bad input."""
    message = message_factory.GetMessageClass(route.method.input_type)()
    given: dict[Path, str] = {}
    for field_path, raw in parts.path_params.items():
        _set_from_string(message, tuple(field_path.split(".")), raw, given, "path")
    for key, raw in parse_qsl(parts.query, keep_blank_values=True):
        _set_from_string(message, tuple(key.split(".")), raw, given, "query")
    body = parts.body.strip()
    if body:
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise bad_request("request body is not valid JSON") from None
        if data is not None:
            _apply_body(message, route.body, data, given)
    for name, header in _header_fields(message.DESCRIPTOR):
        value = (parts.headers or {}).get(header.lower())
        if value is None:
            continue
        _check_free(given, (name,), "header")
        fd = message.DESCRIPTOR.fields_by_name[name]
        setattr(message, name, scalars.from_json(fd, value, name))
    return message


def _apply_body(message: Message, body_rule: str, data: Any, given: dict[Path, str]) -> None:
    if body_rule not in ("", "*"):
        fd = message.DESCRIPTOR.fields_by_name[body_rule]
        _check_free(given, (body_rule,), "body")
        given[(body_rule,)] = "body"
        _set_json(message, fd, data, body_rule, (body_rule,), given)
        return
    if not isinstance(data, dict):
        raise bad_request("request body must be a JSON object")
    _apply_object(message, data, "", (), given)


def _apply_object(
    message: Message, data: dict[str, Any], label: str, prefix: Path | None, given: dict[Path, str]
) -> None:
    """Fill `message` from a JSON object. `prefix` is None inside list elements."""
    fields = message.DESCRIPTOR.fields_by_name
    for key, value in data.items():
        name = f"{label}.{key}" if label else key
        fd = fields.get(key)
        if fd is None:
            raise bad_request(f'unknown field "{name}"')
        if value is None:
            continue
        path = None if prefix is None else (*prefix, key)
        if path is not None and not _is_plain_message(fd):
            _check_free(given, path, "body")
            given[path] = "body"
        _set_json(message, fd, value, name, path, given)


def _set_json(
    message: Message,
    fd: FieldDescriptor,
    value: Any,
    label: str,
    path: Path | None,
    given: dict[Path, str],
) -> None:
    if is_map(fd):
        if not isinstance(value, dict):
            raise bad_request(f'field "{label}" must be a JSON object')
        key_fd = fd.message_type.fields_by_name["key"]
        value_fd = fd.message_type.fields_by_name["value"]
        target = getattr(message, fd.name)
        for key, item in value.items():
            item_label = f"{label}[{key}]"
            map_key = scalars.from_json(key_fd, key, item_label)
            if value_fd.type == FD.TYPE_MESSAGE:
                _fill_message(target[map_key], item, item_label, None, given)
            elif item is not None:
                target[map_key] = scalars.from_json(value_fd, item, item_label)
        return
    if fd.is_repeated:
        if not isinstance(value, list):
            raise bad_request(f'field "{label}" must be a JSON array')
        target = getattr(message, fd.name)
        for index, item in enumerate(value):
            item_label = f"{label}[{index}]"
            if fd.type == FD.TYPE_MESSAGE:
                _fill_message(target.add(), item, item_label, None, given)
            elif item is None:
                raise bad_request(f'field "{item_label}" must not be null')
            else:
                target.append(scalars.from_json(fd, item, item_label))
        return
    if fd.type == FD.TYPE_MESSAGE:
        sub = getattr(message, fd.name)
        sub.SetInParent()
        _fill_message(sub, value, label, path, given)
        return
    setattr(message, fd.name, scalars.from_json(fd, value, label))


def _fill_message(
    message: Message, value: Any, label: str, path: Path | None, given: dict[Path, str]
) -> None:
    kind = message.DESCRIPTOR.full_name
    if kind in _JSON_KINDS:
        scalars.fill_json_kind(message, value, label)
    elif kind in WRAPPERS:
        if value is not None:
            fd = message.DESCRIPTOR.fields_by_name["value"]
            message.value = scalars.from_json(fd, value, label)  # type: ignore[attr-defined]
    elif isinstance(value, dict):
        _apply_object(message, value, label, path, given)
    else:
        raise bad_request(f'field "{label}" must be a JSON object')


def _set_from_string(
    message: Message, path: Path, raw: str, given: dict[Path, str], source: str
) -> None:
    """Set a leaf from a path variable or a query parameter."""
    label = ".".join(path)
    target = message
    for depth, name in enumerate(path):
        fd = target.DESCRIPTOR.fields_by_name.get(name)
        if fd is None:
            raise bad_request(
                f'unknown {"query parameter" if source == "query" else "field"} "{label}"'
            )
        last = depth == len(path) - 1
        if not last:
            if not _is_plain_message(fd):
                raise bad_request(f'unknown query parameter "{label}"')
            target = getattr(target, name)
            continue
        repeated_scalar = fd.is_repeated and fd.type != FD.TYPE_MESSAGE
        if not (repeated_scalar and given.get(path) == source):
            _check_free(given, path, source)
        given[path] = source
        if repeated_scalar:
            getattr(target, name).append(scalars.from_json(fd, raw, label))
        elif fd.is_repeated or _is_plain_message(fd):
            raise bad_request(f'field "{label}" cannot be given in the {source}')
        elif fd.type == FD.TYPE_MESSAGE:
            sub = getattr(target, name)
            sub.SetInParent()
            scalars.fill_from_text(sub, raw, label)
        else:
            setattr(target, name, scalars.from_json(fd, raw, label))


def _check_free(given: dict[Path, str], path: Path, source: str) -> None:
    """Refuse a field (or a field under it) that another source already set."""
    for other, where in given.items():
        if other[: len(path)] == path or path[: len(other)] == other:
            what = ".".join(path)
            if where == source:
                raise bad_request(f'field "{what}" is given twice in the {source}')
            raise bad_request(f'field "{what}" is given twice ({where} and {source})')


def _is_plain_message(fd: FieldDescriptor) -> bool:
    """A singular message field that JSON fills key by key."""
    return (
        fd.type == FD.TYPE_MESSAGE
        and not fd.is_repeated
        and fd.message_type.full_name not in _JSON_KINDS
        and fd.message_type.full_name not in WRAPPERS
    )


def uses_headers(route: Route) -> bool:
    """Whether `route`'s request takes fields from HTTP headers."""
    return bool(_header_fields(route.method.input_type))


_header_cache: dict[MessageDescriptor, tuple[tuple[str, str], ...]] = {}


def _header_fields(descriptor: MessageDescriptor) -> tuple[tuple[str, str], ...]:
    """(field name, header name) for the top-level fields carrying `http_header`."""
    found = _header_cache.get(descriptor)
    if found is None:
        found = tuple(
            (fd.name, options.http_header(fd))
            for fd in descriptor.fields
            if options.http_header(fd)
        )
        _header_cache[descriptor] = found
    return found


def split_access_token(query: str) -> tuple[str, str | None]:
    """Take an `access_token` parameter out of a query string.

    Returns the query without it (other parameters untouched, in order) and
    the token, or None when absent.
    """
    if "access_token=" not in query:
        return query, None
    kept: list[str] = []
    token: str | None = None
    for part in query.split("&"):
        name, _, value = part.partition("=")
        if name == "access_token":
            token = unquote_plus(value)
        else:
            kept.append(part)
    return "&".join(kept), token
