"""The cozy error tree.

Every message says what to do next (the exact command or setting). Faces convert
these in one place each: the CLI to one stderr line and an exit code, the server
to an OpenAI-style error body and a status code.
"""

from __future__ import annotations


class CozyError(Exception):
    """Base of all errors cozy raises on purpose."""

    exit_code: int = 1
    http_status: int = 500
    code: str = "cozy_error"
    error_type: str = "server_error"

    def __init_subclass__(
        cls,
        *,
        exit_code: int | None = None,
        http_status: int | None = None,
        code: str | None = None,
        error_type: str | None = None,
    ) -> None:
        """`class NotFoundError(UsageError, http_status=404, code="not_found")`: what the
        faces make of an error, declared on its class line; the rest is inherited."""
        super().__init_subclass__()
        given = {"exit_code": exit_code, "http_status": http_status, "code": code}
        for name, value in {**given, "error_type": error_type}.items():
            if value is not None:
                setattr(cls, name, value)

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message} — {self.hint}"
        return self.message

    def to_dict(self) -> dict[str, object]:
        return {"type": self.error_type, "code": self.code, "message": str(self)}


class UsageError(
    CozyError,
    exit_code=2,
    http_status=400,
    code="invalid_request",
    error_type="invalid_request_error",
):
    """The caller asked for something malformed (bad flag, empty prompt)."""


class ConfigError(UsageError, code="invalid_config"):
    """A config file or setting is invalid; the message names file, line and field."""


class NotFoundError(UsageError, http_status=404, code="not_found"):
    """A named thing (session, personality, model) does not exist."""


class AuthError(
    CozyError, http_status=401, code="invalid_api_key", error_type="authentication_error"
):
    """No valid API key or token came with the request."""


class PermissionDenied(
    CozyError, http_status=403, code="permission_denied", error_type="permission_error"
):
    """The caller is known but may not do this."""


class StorageError(CozyError, code="storage_error"):
    """The database is unreadable, corrupt, locked for too long, or too new."""


class StorageUnavailable(StorageError, http_status=503, code="storage_unavailable"):
    """The database (or Redis) cannot be reached right now: retry later (HTTP 503)."""


class StorageFull(StorageError, http_status=507, code="storage_full"):
    """The disk holding the data is full: nothing can be written (HTTP 507)."""


class StorageReadOnly(StorageError, http_status=503, code="storage_read_only"):
    """The data cannot be written (a read-only disk or directory) (HTTP 503)."""


class EngineError(CozyError, http_status=502, code="engine_error"):
    """An engine failed in a way the caller should see."""


class ModelError(EngineError, code="model_error"):
    """The model provider answered with an error."""


class ModelUnreachableError(ModelError, http_status=503, code="model_unreachable"):
    """The model provider cannot be reached at all."""


class ModelRateLimited(
    ModelError, http_status=429, code="rate_limited", error_type="rate_limit_error"
):
    """The provider asks us to slow down."""


class ModelAuthError(ModelError, http_status=502, code="model_auth_failed"):
    """The provider rejected our key."""


class ModelNotFound(
    ModelError, http_status=404, code="model_not_found", error_type="invalid_request_error"
):
    """The provider does not know the model asked for."""


class ModelFileError(ModelError, http_status=503, code="model_file_invalid"):
    """A local model file is missing, not a GGUF, truncated, altered, unsupported or too big
    for this machine; the message names the file and the fix."""


class ModelBusy(ModelError, http_status=503, code="model_busy"):
    """The in-process model's queue is full: retry after `retry_after` seconds (HTTP 503)."""

    def __init__(self, message: str, *, hint: str | None = None, retry_after: int = 1) -> None:
        super().__init__(message, hint=hint)
        self.retry_after = retry_after

    def to_dict(self) -> dict[str, object]:
        return {**super().to_dict(), "retry_after": self.retry_after}


class EngineTimeout(EngineError, http_status=504, code="engine_timeout"):
    """An engine call ran past its deadline (HTTP 504)."""


class MissingExtraError(CozyError, http_status=501, code="missing_extra"):
    """An optional extra is not installed; the message names the install command. HTTP
    501: this install lacks the feature, not a server fault (500)."""

    def __init__(self, extra: str, what: str) -> None:
        super().__init__(
            f"{what} needs the optional extra '{extra}'",
            hint=f"install it with `./install.sh --extras {extra}` "
            f"(or `uv pip install 'cozy[{extra}]'`)",
        )
        self.extra = extra


class ToolError(CozyError, code="tool_error"):
    """A tool could not be run."""


class ContextTooLarge(UsageError, code="context_length_exceeded"):
    """The request cannot fit in the model's context window even after trimming."""


class Cancelled(CozyError, exit_code=130, code="cancelled"):
    """The run was cancelled by the user (Esc, Ctrl-C, client disconnect)."""
