"""HEAD on every GET route: the GET response's status and headers, without its body.

FastAPI routes answer only the methods they name. ``HeadAsGet`` runs a HEAD request as a GET,
marked with ``scope["newsreader.head"]`` so that streaming routes can skip their body, and sends
the GET's status and headers (``Content-Length`` included) with an empty body.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

HEAD_MARK = "newsreader.head"


class HeadAsGet:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return
        ended = False

        async def send_without_body(message: Message) -> None:
            nonlocal ended
            if message["type"] == "http.response.body":
                if ended:
                    return
                ended = not message.get("more_body", False)
                if not ended:
                    return  # the rest of a streamed body is dropped as it comes
                message = {"type": "http.response.body", "body": b"", "more_body": False}
            await send(message)

        await self.app({**scope, "method": "GET", HEAD_MARK: True}, receive, send_without_body)
