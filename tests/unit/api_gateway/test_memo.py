"""The gateway's bounded memo and the rendering of unary replies."""

from __future__ import annotations

from google.api import httpbody_pb2
from sfmesh.v1 import instance_pb2, instance_service_pb2

from services.api_gateway import replies
from services.api_gateway.memo import Memo
from services.api_gateway.replies import Replies
from services.api_gateway.routes import build_routes

SERVICES = [instance_service_pb2.DESCRIPTOR.services_by_name["InstanceService"]]


def test_the_memo_keeps_at_most_its_bound_dropping_the_least_recently_used() -> None:
    memo: Memo[str, int] = Memo(2)
    memo.put("a", 1)
    memo.put("b", 2)
    assert memo.get("a") == 1  # "b" is now the least recently used
    memo.put("c", 3)
    assert len(memo) == 2
    assert memo.get("b") is None
    assert (memo.get("a"), memo.get("c")) == (1, 3)


def _route(method: str, path: str):  # type: ignore[no-untyped-def]
    found = build_routes(SERVICES).lookup(method, path)
    return found.route  # type: ignore[union-attr]


def test_a_reply_renders_as_json_and_a_changed_reply_renders_anew() -> None:
    route = _route("GET", "/instances/x")
    rendering = Replies()
    first = instance_pb2.Instance(uuid="u", name="one").SerializeToString()
    second = instance_pb2.Instance(uuid="u", name="two").SerializeToString()
    body, content_type = rendering.answer(route, first)
    assert content_type == b"application/json"
    assert b'"name":"one"' in body
    assert rendering.answer(route, first)[0] is body  # remembered
    assert b'"name":"two"' in rendering.answer(route, second)[0]


def test_a_response_body_rule_renders_only_its_field() -> None:
    route = _route("GET", "/instances")
    reply = instance_service_pb2.ListInstancesResponse(
        instances=[instance_pb2.Instance(uuid="u")]
    ).SerializeToString()
    body, _ = Replies().answer(route, reply)
    assert body.startswith(b'[{"uuid":"u"')


def test_large_replies_are_rendered_but_not_kept() -> None:
    route = _route("GET", "/instances/x")
    big = instance_pb2.Instance(uuid="u", name="n" * (replies.MEMO_LARGEST + 1))
    rendering = Replies()
    body, _ = rendering.answer(route, big.SerializeToString())
    assert len(body) > replies.MEMO_LARGEST
    assert len(rendering._rendered) == 0


def test_http_body_replies_are_answered_raw() -> None:
    route = _route("GET", "/instances/x/consoledata")
    reply = httpbody_pb2.HttpBody(content_type="text/plain", data=b"login: ").SerializeToString()
    assert Replies().answer(route, reply) == (b"login: ", b"text/plain")
