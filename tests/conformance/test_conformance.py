"""Golden request/response pairs for the REST gateway, over real HTTP.

One recording upstream (`upstream.py`) and one gateway (`build_server`, the
production the gateway's own HTTP server set-up, default `GatewayConfig` on a free port) serve every
case in `cases/*.json`; see README.md for the case format.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.api_gateway.config import GatewayConfig
from services.api_gateway.server import build_server
from tests.conformance.upstream import Recorder, start_upstream

CASES_DIR = Path(__file__).parent / "cases"

_CASE_KEYS = {"id", "cites", "http", "upstream", "expect", "xfail"}
_HTTP_KEYS = {"method", "path", "query", "headers", "json", "body", "body_pad_to", "chunked"}
_UPSTREAM_KEYS = {"reply", "stream", "error", "delay"}
_EXPECT_KEYS = {
    "status",
    "headers",
    "json",
    "json_ordered",
    "unordered",
    "json_subset",
    "ndjson",
    "ndjson_subset",
    "sse",
    "sse_subset",
    "upstream",
}
_CHECKS = _EXPECT_KEYS - {"json_ordered", "unordered"}


class CaseError(ValueError):
    """A malformed case file."""


def _load_cases() -> list[Any]:
    params: list[Any] = []
    seen: set[str] = set()
    for path in sorted(CASES_DIR.glob("*.json")):
        cases = json.loads(path.read_text())
        if not isinstance(cases, list):
            raise CaseError(f"{path.name}: the file must hold a JSON array of cases")
        for case in cases:
            case_id = f"{path.stem}/{case.get('id')}"
            _validate(case_id, case)
            if case_id in seen:
                raise CaseError(f"{case_id}: duplicate id")
            seen.add(case_id)
            marks = []
            if "xfail" in case:
                marks.append(pytest.mark.xfail(strict=True, reason=case["xfail"]))
            params.append(pytest.param(case, id=case_id, marks=marks))
    return params


def _validate(case_id: str, case: dict[str, Any]) -> None:
    def need(ok: bool, problem: str) -> None:
        if not ok:
            raise CaseError(f"{case_id}: {problem}")

    need(isinstance(case.get("id"), str), '"id" must be a string')
    need(set(case) <= _CASE_KEYS, f"unknown keys {sorted(set(case) - _CASE_KEYS)}")
    cites = case.get("cites")
    need(isinstance(cites, list) and bool(cites), '"cites" must be a non-empty list')
    http = case.get("http", {})
    need({"method", "path"} <= set(http), '"http" needs "method" and "path"')
    need(set(http) <= _HTTP_KEYS, f"unknown http keys {sorted(set(http) - _HTTP_KEYS)}")
    need(not ({"json", "body"} <= set(http)), 'give "json" or "body", not both')
    upstream = case.get("upstream", {})
    need(set(upstream) <= _UPSTREAM_KEYS, f"unknown upstream keys {set(upstream)}")
    expect = case.get("expect", {})
    need(set(expect) <= _EXPECT_KEYS, f"unknown expect keys {sorted(set(expect) - _EXPECT_KEYS)}")
    need(bool(set(expect) & _CHECKS), '"expect" checks nothing')
    need("status" in expect, '"expect" must name the HTTP status')
    called = expect.get("upstream")
    if called is not None:
        need("rpc" in called, '"expect.upstream" must name the "rpc" (or be null: not called)')
        need(set(called) <= {"rpc", "request", "metadata"}, f"unknown keys in {called}")
    need(bool(case.get("xfail", "-")), '"xfail" must give the reason')


CASES = _load_cases()


# --- fixtures -----------------------------------------------------------------------------


@dataclass
class Stack:
    """The running upstream and gateway."""

    base_url: str
    recorder: Recorder


@pytest.fixture(scope="module")
async def stack() -> AsyncIterator[Stack]:
    upstream = await start_upstream()
    server = build_server(GatewayConfig(api_address=upstream.address, port=0))
    task = asyncio.ensure_future(server.serve())
    try:
        while not server.started:
            assert not task.done(), "the gateway did not start"
            await asyncio.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        yield Stack(f"http://127.0.0.1:{port}", upstream.recorder)
    finally:
        server.should_exit = True
        server.gateway.request_stop()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, 10)
        await upstream.stop()


@pytest.fixture(scope="module")
async def client(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    # identity by default: a case that wants gzip asks for it in its own headers
    headers = {"Accept-Encoding": "identity"}
    async with httpx.AsyncClient(base_url=stack.base_url, headers=headers, timeout=10) as c:
        yield c


# --- comparing ----------------------------------------------------------------------------


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    if len(keys) != len(set(keys)):
        raise AssertionError(f"duplicate JSON keys in {keys}")
    return dict(pairs)


def _parse(text: str) -> Any:
    return json.loads(text, object_pairs_hook=_no_duplicate_keys)


def _matches(actual: Any, expected: Any, where: str, *, subset: bool, loose: bool) -> list[str]:
    """Differences between `actual` and `expected`, as readable lines.

    Types are strict (10 is not 10.0, 1 is not true) unless `loose`, which lets
    an int equal a float of the same value (protobuf's own JSON of a request).
    With `subset`, objects may hold more keys than expected; lists must still
    have the expected length. `{"$regex": r}` matches a string;
    `{"$absent": true}` (subset only) requires the key to be missing.
    """
    if isinstance(expected, dict) and set(expected) == {"$regex"}:
        if isinstance(actual, str) and re.fullmatch(expected["$regex"], actual):
            return []
        return [f"{where}: {actual!r} does not match /{expected['$regex']}/"]
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return [f"{where}: expected an object, got {actual!r}"]
        problems: list[str] = []
        for key, value in expected.items():
            if value == {"$absent": True}:
                if key in actual:
                    problems.append(f"{where}.{key}: expected absent, got {actual[key]!r}")
            elif key not in actual:
                problems.append(f"{where}.{key}: missing")
            else:
                problems += _matches(
                    actual[key], value, f"{where}.{key}", subset=subset, loose=loose
                )
        if not subset:
            problems += [f"{where}.{key}: unexpected" for key in actual if key not in expected]
        return problems
    if isinstance(expected, list):
        if not isinstance(actual, list):
            return [f"{where}: expected an array, got {actual!r}"]
        if len(actual) != len(expected):
            return [f"{where}: expected {len(expected)} items, got {len(actual)}: {actual!r}"]
        problems = []
        for i, (a, e) in enumerate(zip(actual, expected, strict=True)):
            problems += _matches(a, e, f"{where}[{i}]", subset=subset, loose=loose)
        return problems
    numbers = (int, float)
    if (
        loose
        and isinstance(actual, numbers)
        and isinstance(expected, numbers)
        and not isinstance(actual, bool)
        and not isinstance(expected, bool)
    ):
        return [] if actual == expected else [f"{where}: {actual!r} != {expected!r}"]
    if type(actual) is not type(expected) or actual != expected:
        return [f"{where}: got {actual!r} ({type(actual).__name__}), expected {expected!r}"]
    return []


def _check(
    actual: Any, expected: Any, what: str, *, subset: bool = False, loose: bool = False
) -> None:
    problems = _matches(actual, expected, what, subset=subset, loose=loose)
    assert not problems, "\n".join(problems)


def _key_order(value: Any, skip: list[str], where: str = "$") -> list[tuple[str, list[str]]]:
    """Every object's key order, except under the free-form paths in `skip` (Struct keys)."""
    if any(where == p or where.startswith((f"{p}.", f"{p}[")) for p in skip):
        return []
    found: list[tuple[str, list[str]]] = []
    if isinstance(value, dict):
        found.append((where, list(value)))
        for key, item in value.items():
            found += _key_order(item, skip, f"{where}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found += _key_order(item, skip, f"{where}[{i}]")
    return found


def _check_order(actual: Any, expected: Any, expect: dict[str, Any]) -> None:
    if expect.get("json_ordered"):
        skip = expect.get("unordered", [])
        assert _key_order(actual, skip) == _key_order(expected, skip), "key order differs"


def _ndjson(text: str) -> list[Any]:
    if not text:
        return []
    assert text.endswith("\n"), f"NDJSON must end with a newline: {text[-80:]!r}"
    lines = text[:-1].split("\n")
    assert all(lines), f"NDJSON has an empty line: {text!r}"
    return [_parse(line) for line in lines]


def _sse(text: str) -> list[dict[str, Any]]:
    """Parse strictly: every event is exactly `event: <name>` then `data: <json>`."""
    if not text:
        return []
    assert text.endswith("\n\n"), f"SSE must end with a blank line: {text[-80:]!r}"
    events = []
    for block in text[:-2].split("\n\n"):
        lines = block.split("\n")
        assert len(lines) == 2, f"an SSE event must be two lines: {block!r}"
        assert lines[0].startswith("event: "), f"no event line: {block!r}"
        assert lines[1].startswith("data: "), f"no data line: {block!r}"
        events.append({"event": lines[0][7:], "data": _parse(lines[1][6:])})
    return events


# --- the test -----------------------------------------------------------------------------


async def _body_chunks(body: bytes) -> AsyncIterator[bytes]:
    for start in range(0, len(body), 65536):
        yield body[start : start + 65536]


def _request_body(http: dict[str, Any], headers: dict[str, bytes]) -> bytes | None:
    if "json" in http:
        headers.setdefault("Content-Type", b"application/json")
        body = json.dumps(http["json"]).encode()
    elif "body" in http:
        body = http["body"].encode()
    else:
        return None
    pad_to = http.get("body_pad_to")
    if pad_to is not None:
        body += b" " * (pad_to - len(body))
    return body


@pytest.mark.parametrize("case", CASES)
async def test_case(case: dict[str, Any], stack: Stack, client: httpx.AsyncClient) -> None:
    http = case["http"]
    expect = case["expect"]
    # header values go out as UTF-8 bytes, so a case may send non-ASCII ones
    headers = {k: v.encode() for k, v in http.get("headers", {}).items()}
    body = _request_body(http, headers)
    content: Any = body
    if body is not None and http.get("chunked"):
        content = _body_chunks(body)
    url = http["path"] + (f"?{http['query']}" if "query" in http else "")
    stack.recorder.reset(case.get("upstream"))

    raw_headers = [(name.encode(), value) for name, value in headers.items()]
    async with client.stream(http["method"], url, headers=raw_headers, content=content) as response:
        chunks = [chunk async for chunk in response.aiter_bytes()]
    text = b"".join(chunks).decode()

    assert response.status_code == expect["status"], f"status {response.status_code}: {text}"
    for name, value in expect.get("headers", {}).items():
        got = response.headers.get(name)
        if value is None:
            assert got is None, f"header {name}: expected absent, got {got!r}"
        else:
            assert got is not None, f"header {name}: missing"
            _check(got, value, f"header {name}")
    if "json" in expect:
        _check(_parse(text), expect["json"], "body")
        _check_order(_parse(text), expect["json"], expect)
    if "json_subset" in expect:
        _check(_parse(text), expect["json_subset"], "body", subset=True)
    if "ndjson" in expect:
        _check(_ndjson(text), expect["ndjson"], "ndjson")
        _check_order(_ndjson(text), expect["ndjson"], expect)
    if "ndjson_subset" in expect:
        _check(_ndjson(text), expect["ndjson_subset"], "ndjson", subset=True)
    if "sse" in expect:
        _check(_sse(text), expect["sse"], "sse")
        _check_order(_sse(text), expect["sse"], expect)
    if "sse_subset" in expect:
        _check(_sse(text), expect["sse_subset"], "sse", subset=True)
    if "upstream" in expect:
        _check_upstream(stack.recorder, expect["upstream"], response.headers)


def _check_upstream(recorder: Recorder, expected: Any, headers: httpx.Headers) -> None:
    calls = recorder.calls
    if expected is None:
        assert not calls, f"the upstream must not be called, got {[c.rpc for c in calls]}"
        return
    assert len(calls) == 1, f"expected one upstream call, got {[c.rpc for c in calls]}"
    call = calls[0]
    assert call.rpc == expected["rpc"], f"called {call.rpc}, expected {expected['rpc']}"
    if "request" in expected:
        _check(call.request, expected["request"], "request", loose=True)
    for key, value in expected.get("metadata", {}).items():
        got = call.metadata.get(key)
        if value is None:
            assert got is None, f"metadata {key}: expected absent, got {got!r}"
        elif isinstance(value, dict) and "$response_header" in value:
            assert got == headers.get(value["$response_header"]), f"metadata {key}: {got!r}"
        else:
            assert got is not None, f"metadata {key}: missing"
            _check(got, value, f"metadata {key}")
