"""The service's one error shape: every refusal is a 4xx JSON body that says what is wrong.

    {"error": {"code": "url_not_allowed", "message": "…what is wrong and what to do…"}}

``ApiError`` is raised by routes and helpers; the app turns it (and FastAPI's own validation and
HTTP errors) into that shape. Middlewares below the app send it with ``send_json_error``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from starlette.responses import JSONResponse
from starlette.types import Send


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})


def printable(text: str) -> str:
    """``text`` that UTF-8 can carry: a lone surrogate (JSON ``"\\ud800"``) becomes its escape."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def error_body(code: str, message: str, **extra: object) -> dict[str, object]:
    return {"error": {"code": code, "message": printable(message), **extra}}


def error_response(error: ApiError) -> JSONResponse:
    return JSONResponse(
        error_body(error.code, error.message), status_code=error.status, headers=error.headers
    )


async def send_json_error(
    send: Send, status: int, code: str, message: str, headers: Mapping[str, str] | None = None
) -> None:
    """Send a complete JSON error response from ASGI middleware."""
    body = json.dumps(error_body(code, message), ensure_ascii=False).encode("utf-8")
    raw = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    raw += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})
