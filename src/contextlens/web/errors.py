"""Every error the server answers has one shape: `{"error": "<one line: what is wrong; how to
fix it>"}` — bad JSON (400), wrong Host (400), unknown page, model or file (404), wrong method
(405), too large (413), anything else the request got wrong (422), and our own failures (500,
its traceback in the server's log, not in the answer)."""

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from ..errors import ContextlensError
from .models import NotFound


class TooLarge(ContextlensError):
    """A text over the server's limits (answered with 413)."""


def answer(status: int, message: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def first_error(exc: RequestValidationError) -> tuple[int, str]:
    """One line from pydantic's list of errors (malformed JSON is 400, the rest 422)."""
    err = exc.errors()[0]
    if err.get("type") == "json_invalid":
        why = err.get("ctx", {}).get("error", "invalid")
        return 400, f"malformed JSON body ({why}); send a JSON object"
    where = ".".join(str(x) for x in err.get("loc", ()) if x != "body") or "body"
    return 422, f"{where}: {err.get('msg', 'invalid value')}"


def http_message(request: Request, exc: HTTPException) -> str:
    """Starlette's own errors (no such route, wrong method, …) as one line with a fix."""
    path = request.url.path
    if exc.status_code == 404:
        return f"no such page or endpoint: {path}; the page is at /, the API under /api (see /docs)"
    if exc.status_code == 405:
        allowed = exc.headers.get("Allow", "") if exc.headers else ""
        return f"{request.method} is not allowed on {path}; use {allowed or 'another method'}"
    return str(exc.detail)


def install(app: FastAPI) -> None:
    """Answer every error of `app` in the one shape."""

    @app.exception_handler(ContextlensError)
    async def _ours(request: Request, exc: ContextlensError):
        status = 404 if isinstance(exc, NotFound) else 413 if isinstance(exc, TooLarge) else 422
        return answer(status, str(exc))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        return answer(*first_error(exc))

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException):
        return answer(exc.status_code, http_message(request, exc), exc.headers)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception):  # the server logs the traceback
        return answer(
            500,
            f"the server failed on {request.url.path} ({type(exc).__name__}); this is a bug in "
            "contextlens: please report it with the request that caused it",
        )
