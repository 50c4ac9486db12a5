"""What the server checks before the app sees a request (a pure ASGI middleware):

- the Host header names this server, so a page on another site cannot reach a server on
  127.0.0.1 through a DNS name that resolves there (DNS rebinding);
- the body is not larger than the limit: refused by its Content-Length before a byte of it is
  read, and a body sent in chunks is counted as it arrives and refused once past the limit.
"""

import json

from starlette.exceptions import HTTPException

LOOPBACK = {"127.0.0.1", "localhost", "[::1]"}
WILDCARD = {"0.0.0.0", "::", ""}


class BodyTooLarge(HTTPException):
    """A body past the limit (413); raised while the app reads it, so the app never gets it."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            413, f"request body is over this server's limit of {limit:,} bytes; send less text"
        )


def host_names(host: str) -> set[str]:
    """The Host header names a server bound to `host` answers to (without the port)."""
    name = f"[{host}]" if ":" in host else host
    if name in LOOPBACK or host.startswith("127."):
        return LOOPBACK | {name}
    if host in WILDCARD or name == "[::]":
        return set(LOOPBACK)
    return {name.lower()}


def split_host(value: str) -> tuple[str, int | None]:
    """'localhost:8000' → ('localhost', 8000); '[::1]:80' → ('[::1]', 80); no port → None;
    a port that is not a number → -1 (no server has it)."""
    if value.startswith("["):
        name, _, rest = value.partition("]")
        name, port = name + "]", rest.removeprefix(":") if rest else None
    else:
        name, _, port = value.partition(":")
        port = port if ":" in value else None
    if port is None:
        return name.lower(), None
    return name.lower(), int(port) if port.isdigit() else -1


class Guard:
    """ASGI middleware: refuse a request whose Host is not this server (400) or whose body is
    over `max_body` bytes (413), with the app's one error shape {"error": "…"}.

    host: the address the server is bound to. Loopback answers to 127.0.0.1, localhost and
    [::1]; another address to itself; a wildcard (0.0.0.0) to loopback and to the address the
    connection arrived at. The port must be the one the connection arrived at.
    """

    def __init__(self, app, max_body: int, host: str = "127.0.0.1") -> None:
        self.app = app
        self.max_body = max_body
        self.host = host
        self.names = host_names(host)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        wrong = self.wrong_host(headers.get("host", ""), scope.get("server"))
        if wrong:
            return await refuse(send, 400, wrong)
        length = headers.get("content-length")
        if length is not None and not length.isdigit():
            return await refuse(send, 400, f"Content-Length {length!r} is not a number of bytes")
        if length is not None and int(length) > self.max_body:
            return await refuse(send, 413, BodyTooLarge(self.max_body).detail)
        started = False

        async def counted_send(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, self.counting(receive), counted_send)
        except BodyTooLarge as e:
            if not started:
                await refuse(send, 413, e.detail)

    def wrong_host(self, value: str, server) -> str | None:
        """Why the Host header `value` is refused, or None when it names this server (`server`:
        the (address, port) the connection arrived at, when known)."""
        name, port = split_host(value)
        names = self.names | (host_names(server[0]) if self.host in WILDCARD and server else set())
        arrived = server[1] if server else None
        if name in names and (arrived is None or (port or 80) == arrived):
            return None
        home = "127.0.0.1" if "127.0.0.1" in self.names else sorted(self.names)[0]
        listed = ", ".join(sorted(names)) + (f" on port {arrived}" if arrived else "")
        return (
            f"Host {value!r} is not this server, which answers to {listed}; open "
            f"http://{home}{f':{arrived}' if arrived else ''}/ or start it with --host NAME "
            "to serve under another name"
        )

    def counting(self, receive):
        """`receive` that raises BodyTooLarge once the body read so far is over the limit."""
        seen = 0

        async def wrapped():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_body:
                    raise BodyTooLarge(self.max_body)
            return message

        return wrapped


async def refuse(send, status: int, message: str) -> None:
    body = json.dumps({"error": message}, separators=(",", ":")).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
