"""Servers on 127.0.0.1 (a free port) in threads of their own, for tests whose own code must stay
synchronous: an aiohttp application, or a raw socket handler per connection; always stopped on exit."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager

from aiohttp import web


@contextmanager
def serve_in_thread(app: web.Application) -> Iterator[str]:
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app)
    loop.run_until_complete(runner.setup())
    site = web.TCPSite(runner, "127.0.0.1", 0)
    loop.run_until_complete(site.start())
    port = runner.addresses[0][1]
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.run_until_complete(runner.cleanup())
        loop.close()


@contextmanager
def accepting(handle: Callable[[socket.socket], None], scheme: str = "http") -> Iterator[tuple[str, list[int]]]:
    """A raw socket server on 127.0.0.1: each accepted connection runs ``handle`` in a thread of its
    own. Yields (base URL, [connections accepted so far]); the listener closes on exit."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    listener.settimeout(0.2)
    accepted = [0]
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(30)
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            accepted[0] += 1
            threading.Thread(target=handle, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"{scheme}://127.0.0.1:{listener.getsockname()[1]}", accepted
    finally:
        stop.set()
        thread.join(5)
        listener.close()


def chat_app(chat: Callable[[web.Request], Awaitable[web.StreamResponse]], model: str = "m") -> web.Application:
    """An OpenAI-style server: ``chat`` answers /v1/chat/completions, /v1/models lists ``model``."""

    async def models(request: web.Request) -> web.Response:
        return web.json_response({"data": [{"id": model}]})

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_get("/v1/models", models)
    return app
