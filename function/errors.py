"""The API's error type: every client-visible failure is one of these, rendered as JSON."""

from __future__ import annotations


class ApiError(Exception):
    """An error the client can fix; `code` is stable, `message` says how to fix it."""

    def __init__(self, status: int, code: str, message: str, headers: dict | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}

    def to_json(self) -> dict:
        return {"error": {"code": self.code, "message": self.message}}


def invalid_image(message: str) -> ApiError:
    return ApiError(400, "invalid_image", message)


def invalid_parameter(message: str) -> ApiError:
    return ApiError(400, "invalid_parameter", message)


def image_too_large(message: str) -> ApiError:
    return ApiError(413, "image_too_large", message)
