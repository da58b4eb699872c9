"""Across hosts, the internal services answer only a certificate of the
mesh CA: from the root namespace, over the LAN, cp1's scheduler and
eventlog and hv1's node agent answer nothing to a caller with no
certificate (plaintext, or TLS that trusts the CA but presents none) or
with a certificate of another CA, a valid user token notwithstanding; a
mesh certificate (cp2's api's) is answered."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from devmesh.cloud.cloud import Cloud
from devmesh.cloud.layout import endpoint
from launcher.tls import transport
from tests.e2e.test_tls_mesh import INTERNAL
from tests.pki import Pki, make_pki

SERVICES = {"scheduler": "cp1", "eventlog": "cp1", "node_agent": "hv1"}
"""Each internal service, and the host whose one is called."""


def refusing_channels(cloud: Cloud, address: str, stranger: Pki) -> dict[str, grpc.Channel]:
    """Channels to `address` without a mesh certificate, by what they present."""
    ca = cloud.ca.read_bytes()
    return {
        "plaintext": grpc.insecure_channel(address),
        "no certificate": grpc.secure_channel(
            address, grpc.ssl_channel_credentials(root_certificates=ca)
        ),
        "another CA's": Pki(cloud.ca.parent).presenting(stranger, "api").blocking_channel(address),
    }


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_internal_services_answer_only_mesh_certificates_across_hosts(
    cloud: Cloud, token: str, service: str, tmp_path: Path
) -> None:
    address = endpoint(SERVICES[service], service)
    stranger = make_pki(tmp_path, ["api"], name="a stranger's CA")
    for presenting, channel in refusing_channels(cloud, address, stranger).items():
        with channel:
            call = channel.unary_unary(
                INTERNAL[service],
                request_serializer=lambda _: b"",
                response_deserializer=lambda data: data,
            )
            with pytest.raises(grpc.RpcError) as raised:
                call(None, metadata=[("authorization", f"Bearer {token}")], timeout=10)
            assert raised.value.code() == grpc.StatusCode.UNAVAILABLE, (presenting, raised.value)
    with transport(cloud.hosts["cp2"].tls, "api").blocking_channel(address) as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(), timeout=10
        )
    assert reply.status == health_pb2.HealthCheckResponse.SERVING
