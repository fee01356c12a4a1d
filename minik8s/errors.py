"""API errors as the client library raises them, one class per gRPC status.

The apiserver answers with gRPC status codes (see proto/.../apiserver.proto);
the client turns each into one of these so callers can write
``except NotFound`` rather than compare codes.
"""
from __future__ import annotations

import grpc


class ApiError(Exception):
    """An error answered by the apiserver (or the transport to it)."""

    code: grpc.StatusCode = grpc.StatusCode.UNKNOWN

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Invalid(ApiError):
    code = grpc.StatusCode.INVALID_ARGUMENT


class NotFound(ApiError):
    code = grpc.StatusCode.NOT_FOUND


class AlreadyExists(ApiError):
    code = grpc.StatusCode.ALREADY_EXISTS


class Conflict(ApiError):
    """The object changed since it was read (stale resourceVersion)."""

    code = grpc.StatusCode.ABORTED


class PreconditionFailed(ApiError):
    """A precondition did not hold: a fenced write, a pod already bound."""

    code = grpc.StatusCode.FAILED_PRECONDITION


class Fenced(PreconditionFailed):
    """The write carried a lease token that is no longer current: leadership moved on."""


class Expired(ApiError):
    """The watch resourceVersion is older than the server keeps: relist."""

    code = grpc.StatusCode.OUT_OF_RANGE


class Unavailable(ApiError):
    """No apiserver answered, or etcd has no quorum."""

    code = grpc.StatusCode.UNAVAILABLE


class Timeout(ApiError):
    code = grpc.StatusCode.DEADLINE_EXCEEDED


class Unauthenticated(ApiError):
    """The apiserver does not know who is calling: no or bad credentials."""

    code = grpc.StatusCode.UNAUTHENTICATED


class TooManyRequests(ApiError):
    """A per-client limit is reached; try again later."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class Forbidden(ApiError):
    """The caller is known but may not do this."""

    code = grpc.StatusCode.PERMISSION_DENIED


# How the apiserver starts the message of a write refused by fencing.
FENCED_PREFIX = "fenced:"

_BY_CODE: dict[grpc.StatusCode, type[ApiError]] = {
    cls.code: cls
    for cls in (Invalid, NotFound, AlreadyExists, Conflict, PreconditionFailed, Expired,
                Unavailable, Timeout, Unauthenticated, Forbidden, TooManyRequests)
}


def from_rpc_error(err: grpc.RpcError) -> ApiError:
    """The ApiError for a failed gRPC call."""
    code = err.code()  # type: ignore[attr-defined]
    details = err.details() or code.name  # type: ignore[attr-defined]
    cls = _BY_CODE.get(code, ApiError)
    if cls is PreconditionFailed and details.startswith(FENCED_PREFIX):
        cls = Fenced
    exc = cls(details)
    exc.code = code
    return exc
