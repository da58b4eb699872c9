"""The wire format the gateway writes by hand for raw request bodies
(services/api_gateway/uploads.py), parsed back by protobuf."""

from __future__ import annotations

import pytest
from sfmesh.v1 import transfer_service_pb2

from services.api_gateway.uploads import body_message

BODY_FIELD = transfer_service_pb2.AppendUploadRequest.DESCRIPTOR.fields_by_name["data"].number


@pytest.mark.parametrize("size", [0, 1, 127, 128, 16383, 16384, 1 << 20, (1 << 21) + 3])
def test_a_first_message_carries_the_other_fields_the_type_and_the_chunk(size: int) -> None:
    data = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
    first = transfer_service_pb2.AppendUploadRequest(upload_uuid="u" * 36)
    wire = body_message(BODY_FIELD, memoryview(data), first.SerializeToString(), "image/x")

    parsed = transfer_service_pb2.AppendUploadRequest.FromString(wire)
    assert parsed.upload_uuid == "u" * 36
    assert parsed.data.content_type == "image/x"
    assert parsed.data.data == data
    assert wire == parsed.SerializeToString()  # what protobuf itself writes


def test_later_messages_carry_only_the_chunk() -> None:
    wire = body_message(BODY_FIELD, b"chunk")
    parsed = transfer_service_pb2.AppendUploadRequest.FromString(wire)
    assert (parsed.upload_uuid, parsed.data.content_type, parsed.data.data) == ("", "", b"chunk")
    assert wire == parsed.SerializeToString()
