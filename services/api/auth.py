"""AuthService: exchanges a namespace key for a bearer token."""

from __future__ import annotations

import grpc
from sfmesh.v1 import auth_service_pb2, auth_service_pb2_grpc

from services.api.keys import matching_key
from services.api.store import NamespaceStore
from services.common import errors
from services.common.tokens import TokenAuthority


class AuthServicer(auth_service_pb2_grpc.AuthServiceServicer):
    """POST /auth. Namespace and key management arrive with the auth issue."""

    def __init__(self, namespaces: NamespaceStore, authority: TokenAuthority) -> None:
        self._namespaces = namespaces
        self._authority = authority

    async def CreateToken(
        self, request: auth_service_pb2.CreateTokenRequest, context: grpc.aio.ServicerContext
    ) -> auth_service_pb2.CreateTokenResponse:
        if not request.namespace:
            raise errors.InvalidArgument("missing namespace in request")
        namespace = await self._namespaces.get(request.namespace)
        if namespace is None or namespace.state == "deleted":
            raise errors.NotFound("namespace not found")
        if not request.key:
            raise errors.InvalidArgument("missing key in request")
        key = await matching_key(namespace, request.key)
        if key is None:
            raise errors.Unauthenticated("unauthorized", reason="BAD_KEY")
        token = self._authority.issue_user(namespace.name, key.name, key.nonce)
        return auth_service_pb2.CreateTokenResponse(
            access_token=token, token_type="Bearer", expires_in=self._authority.ttl_seconds
        )
