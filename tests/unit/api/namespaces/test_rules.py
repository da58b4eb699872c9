"""services/api/namespaces/rules.py: the pure rules of namespaces, keys and trusts."""

from __future__ import annotations

import pytest
from google.protobuf import json_format
from sfmesh.v1 import network_service_pb2, records_pb2

from services.api.namespaces import rules
from services.common import errors
from services.common import instance_states as states


def record(
    name: str = "demo",
    *,
    state: str = "created",
    trust: tuple[str, ...] = (),
    keys: tuple[tuple[str, str], ...] = (("deploy", "n1"),),
) -> records_pb2.NamespaceRecord:
    return records_pb2.NamespaceRecord(
        name=name,
        state=state,
        trust=list(trust),
        keys=[records_pb2.KeyRecord(name=k, bcrypt_hash=b"h", nonce=n) for k, n in keys],
    )


def refusal(call: object, *args: object) -> errors.SfmeshError:
    with pytest.raises(errors.SfmeshError) as caught:
        call(*args)  # type: ignore[operator]
    return caught.value


# --- who may act ----------------------------------------------------------


def test_owner_system_and_trusted_namespaces_are_trusted() -> None:
    demo = record(trust=("ops",))
    assert rules.is_trusted("demo", demo)
    assert rules.is_trusted("system", demo)
    assert rules.is_trusted("ops", demo)
    assert not rules.is_trusted("other", demo)


def test_trust_is_directional() -> None:
    ops = record("ops")
    assert not rules.is_trusted("demo", ops)


def test_system_only_calls_refuse_others_with_401_unauthorized() -> None:
    rules.check_system("system")
    error = refusal(rules.check_system, "demo")
    assert isinstance(error, errors.Unauthenticated)
    assert error.message == "unauthorized"


@pytest.mark.parametrize(
    ("caller", "found"),
    [
        ("demo", None),
        ("system", None),
        ("demo", record(state="deleted")),
        ("system", record(state="deleted")),
        ("other", record()),
    ],
)
def test_missing_deleted_and_untrusting_namespaces_are_404(
    caller: str, found: records_pb2.NamespaceRecord | None
) -> None:
    error = refusal(rules.check_visible, caller, found)
    assert isinstance(error, errors.NotFound)
    assert error.message == "namespace not found"


def test_visible_namespace_is_returned() -> None:
    demo = record()
    assert rules.check_visible("demo", demo) is demo


# --- create -----------------------------------------------------------------


def test_a_new_namespace_needs_a_name() -> None:
    rules.check_new_namespace_name("demo")
    error = refusal(rules.check_new_namespace_name, "")
    assert isinstance(error, errors.InvalidArgument)
    assert error.message == "no namespace specified"


@pytest.mark.parametrize("name", ["demo", "t1a2-x_y.z", "_ops", "N" * 63])
def test_namespace_names_that_pass(name: str) -> None:
    rules.check_new_namespace_name(name)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("n" * 64, "namespace must be at most 63 characters long, not 64"),
        ("n" * 100_000, "namespace must be at most 63 characters long, not 100000"),
        ("a/b", 'namespace may hold only a-z, A-Z, 0-9, ".", "_" and "-"'),
        ("-a", 'namespace may hold only a-z, A-Z, 0-9, ".", "_" and "-"'),
        ("a b", 'namespace may hold only a-z, A-Z, 0-9, ".", "_" and "-"'),
        ("..", 'namespace may hold only a-z, A-Z, 0-9, ".", "_" and "-"'),
    ],
)
def test_namespace_names_that_fail(name: str, message: str) -> None:
    error = refusal(rules.check_new_namespace_name, name)
    assert isinstance(error, errors.InvalidArgument)
    assert error.message.startswith(message)


def test_key_names_and_secrets_are_bounded() -> None:
    for check in (rules.check_new_key, rules.first_key_to_add):
        long_name = refusal(check, "k" * 64, "secret")
        assert long_name.message == "key_name must be at most 63 characters long, not 64"
        slash = refusal(check, "a/b", "secret")
        assert slash.message.startswith("key_name may hold only a-z")
        secret = refusal(check, "deploy", "s" * 73)
        assert secret.message == "key must be at most 72 bytes, not 73"
    rules.check_new_key("k" * 63, "s" * 72)


def test_first_key_is_optional_and_a_key_without_a_name_is_ignored() -> None:
    assert rules.first_key_to_add("", "") is False
    assert rules.first_key_to_add("", "secret") is False
    assert rules.first_key_to_add("deploy", "secret") is True


def test_first_key_needs_a_secret() -> None:
    error = refusal(rules.first_key_to_add, "deploy", "")
    assert isinstance(error, errors.InvalidArgument)
    assert error.message == "no key specified"


def test_create_blocks_only_the_exact_name_service_key() -> None:
    error = refusal(rules.first_key_to_add, "service_key", "secret")
    assert isinstance(error, errors.PermissionDenied)
    assert error.message == "illegal key name"
    assert rules.first_key_to_add("_service_key_abcde", "secret") is True


# --- keys ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key_name", "key", "kind", "message"),
    [
        ("", "secret", errors.InvalidArgument, "no key name specified"),
        ("", "", errors.InvalidArgument, "no key name specified"),
        ("deploy", "", errors.InvalidArgument, "no key specified"),
        ("_service_key", "secret", errors.PermissionDenied, "illegal key name"),
        ("_service_key_abcde", "secret", errors.PermissionDenied, "illegal key name"),
    ],
)
def test_new_key_refusals(key_name: str, key: str, kind: type, message: str) -> None:
    error = refusal(rules.check_new_key, key_name, key)
    assert isinstance(error, kind)
    assert error.message == message


def test_new_key_accepts_service_key_without_underscore() -> None:
    rules.check_new_key("service_key", "secret")


def test_the_last_key_of_system_stays() -> None:
    system = record("system", keys=(("system", "n1"),))
    error = refusal(rules.remove_key, system, "system")
    assert isinstance(error, errors.Conflict) and error.http_status == 409
    assert error.message.startswith("you cannot delete the last key of the system namespace")
    assert [key.name for key in system.keys] == ["system"]
    two = record("system", keys=(("system", "n1"), ("ops", "n2")))
    rules.remove_key(two, "system")
    assert [key.name for key in two.keys] == ["ops"]


def test_other_namespaces_may_lose_their_last_key() -> None:
    demo = record(keys=(("deploy", "n1"),))
    rules.remove_key(demo, "deploy")
    assert not demo.keys


def test_put_key_adds_or_replaces_in_place() -> None:
    demo = record(keys=(("a", "n1"), ("b", "n2")))
    rules.put_key(demo, records_pb2.KeyRecord(name="c", nonce="n3"))
    rules.put_key(demo, records_pb2.KeyRecord(name="a", nonce="n4"))
    assert [(k.name, k.nonce) for k in demo.keys] == [("a", "n4"), ("b", "n2"), ("c", "n3")]


def test_remove_key() -> None:
    demo = record(keys=(("a", "n1"), ("b", "n2")))
    rules.remove_key(demo, "a")
    assert [k.name for k in demo.keys] == ["b"]
    error = refusal(rules.remove_key, demo, "a")
    assert isinstance(error, errors.NotFound)
    assert error.message == "key name not found in namespace"


# --- trusts ---------------------------------------------------------------------


def test_add_trust_is_idempotent_and_never_stores_system() -> None:
    demo = record()
    rules.add_trust(demo, "ops")
    rules.add_trust(demo, "ops")
    rules.add_trust(demo, "system")
    assert list(demo.trust) == ["ops"]
    assert rules.trusted_names(demo) == ["system", "ops"]


def test_remove_trust_of_system_or_an_absent_name_is_silent() -> None:
    demo = record(trust=("ops", "qa"))
    rules.remove_trust(demo, "system")
    rules.remove_trust(demo, "nobody")
    rules.remove_trust(demo, "ops")
    assert rules.trusted_names(demo) == ["system", "qa"]


def test_external_namespace_must_be_given() -> None:
    error = refusal(rules.check_external_namespace, "")
    assert isinstance(error, errors.InvalidArgument)
    assert error.message == "no external namespace specified"


# --- delete ---------------------------------------------------------------------


def test_system_namespace_is_never_deleted() -> None:
    error = refusal(rules.check_deletable, "system", [], [])
    assert isinstance(error, errors.PermissionDenied)
    assert error.message == "you cannot delete the system namespace"


def test_only_deleted_and_error_instances_allow_a_delete() -> None:
    rules.check_deletable("demo", [], [])
    rules.check_deletable("demo", [states.DELETED, states.ERROR], [])


@pytest.mark.parametrize(
    "state",
    [states.INITIAL, states.CREATED, states.DELETE_WAIT, states.CREATED_ERROR],
)
def test_live_instances_block_a_delete(state: int) -> None:
    error = refusal(rules.check_deletable, "demo", [states.DELETED, state], [])
    assert isinstance(error, errors.InvalidArgument)
    assert error.message == "you cannot delete a namespace with instances"


@pytest.mark.parametrize(
    "state", [network_service_pb2.NETWORK_STATE_INITIAL, network_service_pb2.NETWORK_STATE_CREATED]
)
def test_live_networks_block_a_delete_after_instances(state: int) -> None:
    error = refusal(rules.check_deletable, "demo", [], [state])
    assert isinstance(error, errors.InvalidArgument)
    assert error.message == "you cannot delete a namespace with networks"
    error = refusal(rules.check_deletable, "demo", [states.CREATED], [state])
    assert error.message == "you cannot delete a namespace with instances"  # checked first


def test_networks_deleted_waiting_or_in_error_allow_a_delete() -> None:
    rules.check_deletable(
        "demo",
        [],
        [
            network_service_pb2.NETWORK_STATE_DELETE_WAIT,
            network_service_pb2.NETWORK_STATE_DELETED,
            network_service_pb2.NETWORK_STATE_ERROR,
        ],
    )


# --- revocation ---------------------------------------------------------------------


def test_token_stands_while_key_and_nonce_match() -> None:
    assert rules.token_is_current(record(), "deploy", "n1")


@pytest.mark.parametrize(
    ("found", "key_name", "nonce"),
    [
        (None, "deploy", "n1"),
        (record(state="deleted"), "deploy", "n1"),
        (record(), "gone", "n1"),
        (record(), "deploy", "rotated"),
        (record(), "deploy", ""),
    ],
)
def test_token_is_revoked(
    found: records_pb2.NamespaceRecord | None, key_name: str, nonce: str
) -> None:
    assert not rules.token_is_current(found, key_name, nonce)


# --- view ---------------------------------------------------------------------


def test_view_shape() -> None:
    demo = record(trust=("ops",))
    demo.metadata.update({"owner": "me"})
    shown = json_format.MessageToDict(
        rules.view(demo),
        preserving_proto_field_name=True,
        always_print_fields_with_no_presence=True,
    )
    assert shown == {
        "state": "created",
        "metadata": {"owner": "me"},
        "version": 5,
        "name": "demo",
        "keys": ["deploy"],
        "trust": {"full": ["system", "ops"]},
    }
    assert list(shown) == ["state", "metadata", "version", "name", "keys", "trust"]


def test_view_always_carries_metadata() -> None:
    assert rules.view(record()).HasField("metadata")
