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


class UsageError(CozyError):
    """The caller asked for something malformed (bad flag, empty prompt)."""

    exit_code = 2
    http_status = 400
    code = "invalid_request"
    error_type = "invalid_request_error"


class ConfigError(UsageError):
    """A config file or setting is invalid; the message names file, line and field."""

    code = "invalid_config"


class NotFoundError(UsageError):
    """A named thing (session, personality, model) does not exist."""

    http_status = 404
    code = "not_found"


class AuthError(CozyError):
    http_status = 401
    code = "invalid_api_key"
    error_type = "authentication_error"


class PermissionDenied(CozyError):
    http_status = 403
    code = "permission_denied"
    error_type = "permission_error"


class StorageError(CozyError):
    """The database is unreadable, corrupt, locked for too long, or too new."""

    code = "storage_error"


class StorageUnavailable(StorageError):
    """The database (or Redis) cannot be reached right now: retry later (HTTP 503)."""

    http_status = 503
    code = "storage_unavailable"


class StorageFull(StorageError):
    """The disk holding the data is full: nothing can be written (HTTP 507)."""

    http_status = 507
    code = "storage_full"


class StorageReadOnly(StorageError):
    """The data cannot be written (a read-only disk or directory) (HTTP 503)."""

    http_status = 503
    code = "storage_read_only"


class EngineError(CozyError):
    """An engine failed in a way the caller should see."""

    http_status = 502
    code = "engine_error"


class ModelError(EngineError):
    """The model provider answered with an error."""

    code = "model_error"


class ModelUnreachableError(ModelError):
    """The model provider cannot be reached at all."""

    http_status = 503
    code = "model_unreachable"


class ModelRateLimited(ModelError):
    http_status = 429
    code = "rate_limited"
    error_type = "rate_limit_error"


class ModelAuthError(ModelError):
    """The provider rejected our key."""

    http_status = 502
    code = "model_auth_failed"


class ModelNotFound(ModelError):
    http_status = 404
    code = "model_not_found"
    error_type = "invalid_request_error"


class ModelFileError(ModelError):
    """A local model file is missing, not a GGUF, truncated, altered, unsupported or too big
    for this machine; the message names the file and the fix."""

    http_status = 503
    code = "model_file_invalid"


class ModelBusy(ModelError):
    """The in-process model's queue is full: retry after `retry_after` seconds (HTTP 503)."""

    http_status = 503
    code = "model_busy"

    def __init__(self, message: str, *, hint: str | None = None, retry_after: int = 1) -> None:
        super().__init__(message, hint=hint)
        self.retry_after = retry_after

    def to_dict(self) -> dict[str, object]:
        return {**super().to_dict(), "retry_after": self.retry_after}


class EngineTimeout(EngineError):
    """An engine call ran past its deadline (HTTP 504)."""

    http_status = 504
    code = "engine_timeout"


class MissingExtraError(CozyError):
    """An optional extra is not installed; the message names the install command."""

    exit_code = 1
    http_status = 501  # this install lacks the feature: not a server fault (500)
    code = "missing_extra"

    def __init__(self, extra: str, what: str) -> None:
        super().__init__(
            f"{what} needs the optional extra '{extra}'",
            hint=f"install it with `./install.sh --extras {extra}` "
            f"(or `uv pip install 'cozy[{extra}]'`)",
        )
        self.extra = extra


class ToolError(CozyError):
    code = "tool_error"


class ContextTooLarge(UsageError):
    """The request cannot fit in the model's context window even after trimming."""

    code = "context_length_exceeded"


class Cancelled(CozyError):
    """The run was cancelled by the user (Esc, Ctrl-C, client disconnect)."""

    exit_code = 130
    code = "cancelled"
