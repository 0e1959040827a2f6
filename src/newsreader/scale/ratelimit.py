"""The per-client rate limit shared by every API node: one token bucket per client in Redis.

The semantics are ``service.security.RateLimiter``'s: a bucket holds at most ``burst`` tokens,
refills at ``per_minute / 60`` tokens a second, and a request takes one token or is told how many
seconds until one is there. Here the bucket is a Redis hash (``newsreader:rate:<client>``: tokens
and the time they were counted) read and written by one Lua script, so concurrent requests on any
number of nodes take from one bucket atomically, and the time is Redis's own (``TIME``), so the
nodes' clocks do not matter. A bucket expires when it would be full again: an absent bucket is a
full one, so Redis keeps only the clients that used it lately.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from newsreader.errors import RedisUnavailable

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.commands.core import AsyncScript

KEY_PREFIX = "newsreader:rate:"

# KEYS[1]: the bucket; ARGV[1]: tokens a second; ARGV[2]: burst.
# Returns nil when a token was taken, else the seconds until one is there (a string: Lua numbers
# would come back as integers).
TAKE = """
local now = redis.call('TIME')
now = tonumber(now[1]) + tonumber(now[2]) / 1000000
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local bucket = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(bucket[1])
local at = tonumber(bucket[2])
if tokens == nil or at == nil then
  tokens = burst
  at = now
end
tokens = math.min(burst, tokens + math.max(0, now - at) * rate)
local wait = nil
if tokens < 1 then
  wait = (1 - tokens) / rate
else
  tokens = tokens - 1
end
redis.call('HSET', KEYS[1], 'tokens', string.format('%.17g', tokens),
           'at', string.format('%.17g', now))
redis.call('PEXPIRE', KEYS[1], math.max(1, math.ceil((burst - tokens) / rate * 1000)))
if wait == nil then
  return nil
end
return string.format('%.17g', wait)
"""


class RedisRateLimiter:
    """A token bucket per client in Redis: ``per_minute`` requests a minute, bursts of ``burst``.

    ``per_minute`` 0 turns the limit off (Redis is not asked).
    """

    def __init__(self, redis: Redis, per_minute: int, burst: int, *, timeout: float = 2.0) -> None:
        if per_minute < 0 or burst < 0:
            raise ValueError("per_minute and burst must not be negative")
        self.redis = redis
        self.timeout = timeout
        """Seconds Redis gets to answer a ``take`` (a stopped or hung server must not hold every
        request)."""
        self.rate = per_minute / 60.0
        self.burst = float(burst)
        self._script: AsyncScript | None = None

    async def take(self, client: str) -> float | None:
        """None if ``client`` may go ahead (one token taken), else seconds until it may.

        Raises ``RedisUnavailable`` when Redis cannot be reached or does not answer in time.
        """
        if self.rate <= 0:
            return None
        from redis import exceptions

        if self._script is None:
            self._script = self.redis.register_script(TAKE)
        try:
            async with asyncio.timeout(self.timeout):
                wait = await self._script(
                    keys=[KEY_PREFIX + client], args=[repr(self.rate), repr(self.burst)]
                )
        except (exceptions.ConnectionError, exceptions.TimeoutError, TimeoutError) as error:
            why = str(error) or f"no answer within {self.timeout:g} s"
            raise RedisUnavailable(
                f"cannot check the rate limit: Redis does not answer ({why}); "
                "check that redis-server is running."
            ) from None
        if wait is None:
            return None
        return float(wait.decode() if isinstance(wait, bytes) else wait)
