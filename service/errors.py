"""Domain errors, mapped to HTTP status and OpenAI-shaped bodies in the app factory."""

from __future__ import annotations


class ReverieError(Exception):
    """Base of errors that reach the client. Subclasses set the HTTP status and OpenAI error type."""

    status_code = 500
    error_type = "server_error"
    code: str | None = None
    # What a 5xx body says: the message may hold exception text, paths or URLs; those go to the log only.
    public_message = "Internal server error."

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code

    @property
    def client_message(self) -> str:
        """The message a client sees: the message of a 4xx, a fixed sentence for a 5xx."""
        return self.message if self.status_code < 500 else self.public_message


class InvalidRequestError(ReverieError):
    status_code = 400
    error_type = "invalid_request_error"


class AuthenticationError(ReverieError):
    status_code = 401
    error_type = "invalid_request_error"
    code = "invalid_api_key"


class ModelNotFoundError(ReverieError):
    status_code = 404
    error_type = "invalid_request_error"
    code = "model_not_found"


class PermissionDeniedError(ReverieError):
    """Authenticated, but the request may not do this (e.g. a dashboard write without its CSRF token)."""

    status_code = 403
    error_type = "invalid_request_error"
    code = "permission_denied"


class NotFoundError(ReverieError):
    status_code = 404
    error_type = "invalid_request_error"


class ConflictError(ReverieError):
    status_code = 409
    error_type = "invalid_request_error"


class UnprocessableError(ReverieError):
    """Well-formed, but cannot be done as asked (e.g. an Idempotency-Key reused with another body)."""

    status_code = 422
    error_type = "invalid_request_error"


class PayloadTooLargeError(ReverieError):
    status_code = 413
    error_type = "invalid_request_error"
    code = "request_too_large"


class QueueFullError(ReverieError):
    status_code = 429
    error_type = "rate_limit_error"
    code = "queue_full"
    retry_after_s: float = 1.0


class EngineNotReadyError(ReverieError):
    status_code = 503
    error_type = "server_error"
    code = "engine_not_ready"
    public_message = "The model is not ready; retry shortly."


class StoreUnavailableError(ReverieError):
    """Neither the store nor the spool could record the interaction: refuse rather than lose it."""

    status_code = 503
    error_type = "server_error"
    code = "store_unavailable"
    public_message = "The episode store is unavailable; retry shortly."


class EngineError(ReverieError):
    status_code = 500
    error_type = "server_error"
    code = "engine_error"
    public_message = "The engine failed while generating; the attempt was recorded."


class AdapterError(ReverieError):
    status_code = 400
    error_type = "invalid_request_error"
    code = "invalid_adapter"


class AdapterStoreError(ReverieError):
    """The adapter object store (REVERIE_ADAPTER_STORE) could not be reached or refused a request: worth
    retrying, unlike an `AdapterError`, which no retry mends."""

    status_code = 503
    error_type = "server_error"
    code = "adapter_store_unavailable"
    public_message = "The adapter store is unavailable; retry shortly."
