"""The exception tree of yurthub: every error the gateway raises derives from YurthubError.

API errors carry the HTTP code and the Kubernetes ``StatusReason`` they become on the wire;
they are turned into ``metav1.Status`` bodies in one place (``kube.status``), never by the
code that raises them.
"""

from __future__ import annotations

from typing import Any


class YurthubError(Exception):
    """Root of every error raised by yurthub."""


class ConfigError(YurthubError):
    """A setting is unknown or has a bad value; the message names the source, key and value."""


class Busy(ConfigError):
    """What the hub needs is held by another process now (its port, the cache tree): this
    may pass, unlike a bad setting, so the service exits 75 (EX_TEMPFAIL) and systemd
    starts it again, where a bad setting (78, EX_CONFIG) waits for the operator."""


class UpstreamError(YurthubError):
    """The cloud kube-apiserver could not be reached or broke the connection."""


class UpstreamUnavailable(UpstreamError):
    """No connection could be made to any healthy server (the request was never sent)."""


class UpstreamBroken(UpstreamError):
    """The connection broke after the request was sent, before any of the body arrived."""


class ProbeFailed(UpstreamError):
    """A health probe (or the node Lease renewal) of one server did not succeed."""


class PeerLookupError(YurthubError):
    """The kernel could not be asked which user owns the other end of a connection."""


class IdentityUnavailable(UpstreamUnavailable):
    """The hub has no usable client identity yet (bootstrapping, or its certificate expired)."""


class IdentityError(YurthubError):
    """The hub could not get or renew a certificate (the message says what the cloud said)."""


class CredentialRejected(IdentityError):
    """The cloud refused the credential the hub asked with (401/403): e.g. an expired token."""


class CertificateError(IdentityError, ValueError):
    """A PEM that is not the certificate or key it should be (the message says why)."""


class IdentityFileError(ConfigError, IdentityError):
    """A file of the hub's identity under root_dir exists but cannot be read (another
    owner, a directory): one line at start, a retried failure in the certificate threads."""


class BadSignature(YurthubError, ValueError):
    """A JWS that is not well formed, names another key, or does not verify."""


class DiscoveryRefused(ConfigError):
    """cluster-info cannot be trusted: bad signature, wrong CA pin, unknown token id."""


class StorageError(YurthubError):
    """The cache tree could not be read or written."""


class InvalidKeyError(StorageError):
    """A cache key segment is not a valid Kubernetes name (or would escape the cache root)."""


class DamagedObject(StorageError):
    """A cached object's file cannot be trusted: missing while the index lists it, not a
    regular file, unreadable, torn, or holding another object than its path names."""


class LocalWriteError(StorageError):
    """A write the local proxy applies while the cloud is away could not be committed."""


class DecodeError(YurthubError):
    """A body or stream from the apiserver is not what its Content-Type promises."""


class NestingTooDeep(DecodeError, ValueError):
    """A JSON text nests deeper than the hub decodes (``kube.jsondepth``); a ValueError, as
    every JSON decoding error."""


class JSONPathError(YurthubError):
    """A JSONPath template (a CRD's printer column) does not parse or cannot be evaluated."""


class ApiError(YurthubError):
    """An error that is answered to the client as a ``metav1.Status``.

    ``details`` follows ``metav1.StatusDetails`` (name, group, kind, causes, retryAfterSeconds);
    ``list_meta`` is the Status's own ``metadata`` (a ListMeta: the inconsistent ``continue``
    token of an expired one).
    """

    code = 500
    reason = "InternalError"

    def __init__(self, message: str, *, details: dict[str, Any] | None = None,
                 code: int | None = None, reason: str | None = None,
                 list_meta: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}
        self.list_meta = list_meta or {}
        if code is not None:
            self.code = code
        if reason is not None:
            self.reason = reason


class BadRequest(ApiError):
    code = 400
    reason = "BadRequest"


class Unauthorized(ApiError):
    code = 401
    reason = "Unauthorized"


class Forbidden(ApiError):
    code = 403
    reason = "Forbidden"


class NotFound(ApiError):
    code = 404
    reason = "NotFound"


class MethodNotAllowed(ApiError):
    code = 405
    reason = "MethodNotAllowed"


class NotAcceptable(ApiError):
    code = 406
    reason = "NotAcceptable"


class AlreadyExists(ApiError):
    code = 409
    reason = "AlreadyExists"


class Conflict(ApiError):
    code = 409
    reason = "Conflict"


class Gone(ApiError):
    """A resourceVersion or continue token that is too old (``410 Expired``)."""

    code = 410
    reason = "Expired"


class RequestEntityTooLarge(ApiError):
    """413; kube-apiserver's message begins ``Request entity too large: ``."""

    code = 413
    reason = "RequestEntityTooLarge"


class UnsupportedMediaType(ApiError):
    code = 415
    reason = "UnsupportedMediaType"


class Invalid(ApiError):
    code = 422
    reason = "Invalid"


class TooManyRequests(ApiError):
    code = 429
    reason = "TooManyRequests"


class InternalError(ApiError):
    code = 500
    reason = "InternalError"


class BadGateway(ApiError):
    code = 502
    reason = "InternalError"


class ServiceUnavailable(ApiError):
    code = 503
    reason = "ServiceUnavailable"


class GatewayTimeout(ApiError):
    code = 504
    reason = "Timeout"
