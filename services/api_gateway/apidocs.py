"""The discovery pages: `/apidocs`, the OpenAPI document as one HTML page, and `/`. Pure.

Rendered once at start-up, server-side, with inline CSS and no scripts, so it
reads the same offline. Sections: a table of contents by service, one entry
per operation (method, path, description, parameters, request body, response)
and every schema with its fields. `GET /` is a plain list of capability strings.
"""

from __future__ import annotations

import html
import re
from typing import Any

from services.api_gateway.openapi import ANY_TYPE, JSON, NDJSON, Document

_CSS = """
body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;
color:#222;line-height:1.45}
h2{border-bottom:2px solid #ccc;padding-bottom:.2rem;margin-top:2.5rem}
h3{margin:1.8rem 0 .3rem}h4{margin:.8rem 0 .3rem}
code{background:#f3f3f3;padding:0 .2rem;border-radius:3px}
table{border-collapse:collapse;width:100%;margin:.3rem 0}
th,td{border:1px solid #ddd;padding:.25rem .5rem;text-align:left;vertical-align:top}
th{background:#f7f7f7}.verb{font-weight:bold;padding:.1rem .4rem;border-radius:3px;
color:#fff;background:#555;font-family:monospace}.get{background:#2a7ab0}
.post{background:#3a8f3a}.put{background:#a0702a}.delete{background:#b03a3a}
.note{color:#666;font-size:.9em}
"""
_CODE = re.compile(r"`([^`]+)`")


def render_apidocs(document: Document) -> bytes:
    """The whole HTML page for `document`."""
    title = html.escape(document["info"]["title"])
    operations = _operations_by_tag(document)
    schemas: dict[str, Any] = document.get("components", {}).get("schemas", {})
    out = [
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{title}</title>',
        f"<style>{_CSS}</style></head><body>\n<h1>{title}</h1>\n",
        _text(document["info"].get("description", "")),
        '<p>Machine-readable: <a href="/openapi.json">/openapi.json</a> (OpenAPI 3.1).</p>\n',
        "<h2>Contents</h2>\n<ul>\n",
    ]
    for tag, ops in operations.items():
        out.append(f'<li><a href="#tag-{_id(tag)}">{html.escape(tag)}</a><ul>\n')
        for verb, path, op in ops:
            out.append(
                f'<li><a href="#op-{_id(op["operationId"])}">{verb.upper()} '
                f"<code>{html.escape(path)}</code></a> {html.escape(op.get('summary', ''))}</li>\n"
            )
        out.append("</ul></li>\n")
    out.append('<li><a href="#schemas">Schemas</a></li>\n</ul>\n')
    about = {t["name"]: t.get("description", "") for t in document.get("tags", [])}
    for tag, ops in operations.items():
        out.append(f'<h2 id="tag-{_id(tag)}">{html.escape(tag)}</h2>\n{_text(about.get(tag, ""))}')
        out.extend(_operation(verb, path, op) for verb, path, op in ops)
    out.append('<h2 id="schemas">Schemas</h2>\n')
    out.extend(_schema(name, schema) for name, schema in schemas.items())
    out.append("</body></html>\n")
    return "".join(out).encode()


def render_index(capabilities: list[str]) -> bytes:
    """The `GET /` page: the upstream's capability strings as one HTML list."""
    items = "".join(f"<li>{html.escape(c)}</li>\n" for c in capabilities)
    return (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>sfmesh REST API</title>'
        "</head><body>\n<h1>sfmesh REST API</h1>\n<p>Capabilities:</p>\n<ul>\n"
        f"{items}</ul>\n</body></html>\n"
    ).encode()


def _operations_by_tag(document: Document) -> dict[str, list[tuple[str, str, Any]]]:
    found: dict[str, list[tuple[str, str, Any]]] = {t["name"]: [] for t in document.get("tags", [])}
    for path, item in document["paths"].items():
        for verb, op in item.items():
            for tag in op.get("tags", ["other"]):
                found.setdefault(tag, []).append((verb, path, op))
    return {tag: ops for tag, ops in found.items() if ops}


def _operation(verb: str, path: str, op: dict[str, Any]) -> str:
    anonymous = op.get("security") == []
    out = [
        f'<h3 id="op-{_id(op["operationId"])}"><span class="verb {verb}">{verb.upper()}</span> '
        f"<code>{html.escape(path)}</code></h3>\n",
        f'<p class="note">{html.escape(op["operationId"])} · '
        f"{'no token needed' if anonymous else 'bearer token'}</p>\n",
        _text(op.get("description", "")),
    ]
    params = op.get("parameters", [])
    if params:
        out.append("<h4>Parameters</h4>\n<table><tr><th>name</th><th>in</th><th>type</th>")
        out.append("<th>description</th></tr>\n")
        for p in params:
            name = f"<code>{html.escape(p['name'])}</code>"
            name += " (required)" if p.get("required") else ""
            out.append(
                f"<tr><td>{name}</td><td>{p['in']}</td>"
                f"<td>{_type(p['schema'])}</td><td>{_inline(p.get('description', ''))}</td></tr>\n"
            )
        out.append("</table>\n")
    body = op.get("requestBody", {}).get("content", {}).get(JSON, {}).get("schema")
    if body is not None:
        out.append(f"<h4>Request body</h4>\n<p>{_type(body)} (JSON)</p>\n")
        if "properties" in body:
            out.append(_fields(body))
    if "101" in op["responses"]:
        upgrade = _inline(op["responses"]["101"]["description"])
        out.append(f"<h4>Response</h4>\n<p>101: {upgrade} Otherwise an ")
        out.append('<a href="#schema-Error">Error</a>.</p>\n')
        return "".join(out)
    content = op["responses"]["200"].get("content", {})
    if NDJSON in content:
        result = content[NDJSON]["schema"]["oneOf"][0]["properties"]["result"]
        out.append(
            f"<h4>Response</h4>\n<p>A stream of {_type(result)}: NDJSON lines "
            '<code>{"result": …}</code>, or Server-Sent Events with '
            "<code>Accept: text/event-stream</code>; a failure ends it with an "
            '<a href="#schema-Error">Error</a>.</p>\n'
        )
    elif ANY_TYPE in content:
        out.append("<h4>Response</h4>\n<p>200: raw bytes, of the type their Content-Type names; ")
        out.append('otherwise an <a href="#schema-Error">Error</a>.</p>\n')
    else:
        out.append(f"<h4>Response</h4>\n<p>200: {_type(content[JSON]['schema'])}; ")
        out.append('otherwise an <a href="#schema-Error">Error</a>.</p>\n')
    return "".join(out)


def _schema(name: str, schema: dict[str, Any]) -> str:
    out = [f'<h3 id="schema-{_id(name)}">{html.escape(name)}</h3>\n']
    if "enum" in schema:
        values = ", ".join(f"<code>{html.escape(v or 'null')}</code>" for v in schema["enum"])
        out.append(f"<p>One of: {values}.</p>\n")
    out.append(_text(schema.get("description", "")))
    if schema.get("properties"):
        out.append(_fields(schema))
    return "".join(out)


def _fields(schema: dict[str, Any]) -> str:
    rows = [
        f"<tr><td><code>{html.escape(name)}</code></td><td>{_type(field)}</td>"
        f"<td>{_inline(field.get('description', ''))}</td></tr>\n"
        for name, field in schema["properties"].items()
    ]
    return (
        "<table><tr><th>field</th><th>type</th><th>description</th></tr>\n"
        + "".join(rows)
        + ("</table>\n")
    )


def _type(schema: dict[str, Any]) -> str:
    """A short HTML label of a schema: `Instance`, `array of string`, `string | null`."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return f'<a href="#schema-{_id(name)}">{html.escape(name)}</a>'
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return " | ".join(_type(s) for s in schema[key])
    kinds = schema.get("type")
    if kinds is None:
        return "any JSON"
    labels = []
    for kind in [kinds] if isinstance(kinds, str) else kinds:
        if kind == "array":
            items = schema.get("items")
            labels.append(f"array of {_type(items)}" if items is not None else "array")
        elif kind == "object" and isinstance(schema.get("additionalProperties"), dict):
            labels.append(f"map of string to {_type(schema['additionalProperties'])}")
        elif kind == "object" and "title" in schema:
            labels.append(f"object (<code>{html.escape(schema['title'])}</code> fields below)")
        else:
            fmt = schema.get("format") if kind != "null" else None
            labels.append(kind + (f" ({html.escape(fmt)})" if fmt else ""))
    return " | ".join(labels)


def _text(text: str) -> str:
    """Comment text as HTML: blank lines split paragraphs, `- ` lines make a list."""
    out = []
    for block in text.split("\n\n"):
        if not block.strip():
            continue
        lines = block.strip().split("\n")
        if all(line.startswith("- ") for line in lines):
            items = "".join(f"<li>{_inline(line[2:])}</li>" for line in lines)
            out.append(f"<ul>{items}</ul>\n")
        else:
            out.append(f"<p>{_inline(' '.join(lines))}</p>\n")
    return "".join(out)


def _inline(text: str) -> str:
    return _CODE.sub(r"<code>\1</code>", html.escape(" ".join(text.split())))


def _id(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "-", name)
