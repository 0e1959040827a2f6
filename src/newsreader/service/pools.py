"""The service's own bounded thread pools, so that one kind of blocking work cannot starve another.

Python's default pool (``asyncio.to_thread``) has min(32, cores + 4) threads, six on two cores,
shared by everything. A few slow sites would hold all of them, and every other reading would
wait. Here:

- ``fetch`` fetches and extracts URL sources (each fetch ends by itself at its deadline);
- ``work`` extracts posted text and HTML, builds scripts and writes finished files;
- ``resolve`` checks the addresses of URLs when they are submitted.

Synthesis has none of these: edge is asynchronous, and the embedded voice has its own thread.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

from newsreader.service.config import ServiceConfig

P = ParamSpec("P")
T = TypeVar("T")


class Pools:
    def __init__(self, config: ServiceConfig) -> None:
        self.fetch = ThreadPoolExecutor(config.fetch_workers, thread_name_prefix="nr-fetch")
        self.work = ThreadPoolExecutor(config.work_workers, thread_name_prefix="nr-work")
        self.resolve = ThreadPoolExecutor(4, thread_name_prefix="nr-resolve")

    @staticmethod
    async def run(
        pool: ThreadPoolExecutor, function: Callable[P, T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """``function(*args, **kwargs)`` in ``pool``, with the caller's context variables."""
        context = contextvars.copy_context()
        call = functools.partial(context.run, function, *args, **kwargs)
        return await asyncio.get_running_loop().run_in_executor(pool, call)

    def close(self) -> None:
        """Drop work not started yet; threads still running end by themselves."""
        for pool in (self.fetch, self.work, self.resolve):
            pool.shutdown(wait=False, cancel_futures=True)


class PerClient:
    """At most ``limit`` slots held at once by one client; its other jobs wait, in order.

    ``None`` (a job resumed after a restart, whose client is not known) is not limited.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._held: dict[str, int] = {}
        self._waiting: dict[str, list[asyncio.Future[None]]] = {}

    def held(self, client: str) -> int:
        return self._held.get(client, 0)

    async def acquire(self, client: str | None) -> None:
        if client is None:
            return
        if self._held.get(client, 0) < self.limit and not self._waiting.get(client):
            self._held[client] = self._held.get(client, 0) + 1
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(client, []).append(waiter)
        try:
            await waiter  # the slot is handed over by release()
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release(client)
            else:
                self._waiting[client].remove(waiter)
                if not self._waiting[client]:
                    del self._waiting[client]
            raise

    def release(self, client: str | None) -> None:
        if client is None:
            return
        queue = self._waiting.get(client)
        while queue:
            waiter = queue.pop(0)
            if not waiter.done():
                if not queue:
                    del self._waiting[client]
                waiter.set_result(None)  # the slot passes to the next job, still held
                return
        self._waiting.pop(client, None)
        self._held[client] -= 1
        if not self._held[client]:
            del self._held[client]
