"""Path templates: every grammar form, verbs, decoding, refusals."""

from __future__ import annotations

import pytest

from services.api_gateway.pattern import TemplateError, parse_template


def test_literal_only() -> None:
    template = parse_template("/instances")
    assert template.match("/instances") == {}
    assert template.match("/instances/") is None
    assert template.match("/other") is None


def test_single_variable_is_percent_decoded() -> None:
    template = parse_template("/instances/{ref}")
    assert template.match("/instances/my%20vm") == {"ref": "my vm"}
    assert template.match("/instances/a%2Fb") == {"ref": "a/b"}
    assert template.match("/instances/") is None
    assert template.match("/instances/a/b") is None


def test_two_variables() -> None:
    template = parse_template("/instances/{ref}/metadata/{key}")
    assert template.match("/instances/vm/metadata/k") == {"ref": "vm", "key": "k"}


def test_nested_field_path_with_segments() -> None:
    template = parse_template("/v1/{instance.name=projects/*/instances/*}")
    assert template.match("/v1/projects/p/instances/i") == {
        "instance.name": "projects/p/instances/i"
    }
    assert template.match("/v1/projects/p/zones/i") is None


def test_multi_segment_variable_keeps_encoded_slash() -> None:
    template = parse_template("/files/{path=**}")
    assert template.match("/files/a/b%2Fc/d") == {"path": "a/b%2Fc/d"}
    assert template.match("/files") == {"path": ""}


def test_wildcards_without_variables() -> None:
    assert parse_template("/a/*/c").match("/a/b/c") == {}
    assert parse_template("/a/**").match("/a/b/c/d") == {}


def test_verb_on_literal_and_variable() -> None:
    watch_all = parse_template("/instances:watch")
    assert watch_all.verb == "watch"
    assert watch_all.match("/instances:watch") == {}
    assert watch_all.match("/instances") is None
    watch_one = parse_template("/instances/{ref}:watch")
    assert watch_one.match("/instances/foo:watch") == {"ref": "foo"}
    assert watch_one.match("/instances/foo") is None
    assert watch_one.match("/instances/:watch") is None
    events = parse_template("/instances/{ref}/events:watch")
    assert events.match("/instances/foo/events:watch") == {"ref": "foo"}
    assert events.match("/instances/foo/events") is None


def test_encoded_colon_is_not_a_verb() -> None:
    assert parse_template("/instances/{ref}:watch").match("/instances/foo%3Awatch") is None
    assert parse_template("/instances/{ref}").match("/instances/foo%3Awatch") == {
        "ref": "foo:watch"
    }


def test_shape_erases_names_and_specificity_orders() -> None:
    assert parse_template("/a/{x}").shape == parse_template("/a/{y=*}").shape
    literal = parse_template("/instances/all")
    variable = parse_template("/instances/{ref}")
    verb = parse_template("/instances/{ref}:watch")
    ordered = sorted([variable, literal, verb], key=lambda t: t.specificity)
    assert ordered == [verb, literal, variable]


@pytest.mark.parametrize(
    "bad",
    ["instances", "/a/**/b", "/a/{x", "/a/{x}}", "/a/{x.}", "/a/{x}/{x}", "/a/{x={y}}", "/a:"],
)
def test_bad_templates_are_refused(bad: str) -> None:
    with pytest.raises(TemplateError):
        parse_template(bad)
