"""On a real uvicorn on loopback: audio streams out while the article is still being synthesized."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

from newsreader.audio.mp3 import bare_frames
from tests.service.conftest import ARTICLE
from tests.standin.server import EdgeStandin

LATENCY = 0.6
"""The stand-in's delay before each segment's audio (``first_audio_latency``), seconds."""


def test_first_audio_byte_within_latency_plus_half_a_second(
    serve: Any, edge_standin: EdgeStandin
) -> None:
    # One segment at a time: the 4 segments take 4 x LATENCY, so a stream that waited for the
    # whole article would start after 2.4 s, not 0.6 s.
    edge_standin.configure(first_audio_latency=LATENCY)
    # Loudness off: the finished file is then exactly the streamed frames.
    server = serve(segment_concurrency=1, loudness=None)

    async def scenario() -> None:
        async with httpx.AsyncClient(base_url=server.base, timeout=30) as client:
            start = time.monotonic()
            posted = await client.post("/api/readings", json={"text": ARTICLE})
            assert posted.status_code == 202
            links = posted.json()["links"]

            async def listen(delay: float) -> tuple[float, bytes, str]:
                await asyncio.sleep(delay)
                async with client.stream("GET", links["stream"]) as response:
                    assert response.status_code == 200
                    assert response.headers["content-type"] == "audio/mpeg"
                    assert "content-length" not in response.headers
                    assert response.headers["cache-control"] == "no-store"
                    data = bytearray()
                    first = 0.0
                    status = ""
                    async for chunk in response.aiter_raw():
                        if not data:
                            first = time.monotonic() - start
                            status = (await client.get(links["self"])).json()["status"]
                        data += chunk
                    return first, bytes(data), status

            (first, early, status), (_, late, _) = await asyncio.gather(listen(0), listen(1.0))
            print(f"POST → first audio byte: {first:.3f} s (stand-in latency {LATENCY} s)")
            assert first <= LATENCY + 0.5
            assert status == "running"  # the rest was still being synthesized
            total = time.monotonic() - start
            assert total >= 3 * LATENCY

            # Both listeners, the one who came a second late too, heard the whole reading, and
            # exactly the frames of the finished file.
            reading = (await client.get(links["self"])).json()
            assert reading["status"] == "done"
            finished = (await client.get(links["audio"])).content
            # The finished file adds only the ID3 tag and the Info frame in front of that audio.
            assert finished[:3] == b"ID3"
            assert early == late == bare_frames(finished)

            health = (await client.get("/healthz")).json()
            assert health == {**health, "status": "ok", "queued": 0, "running": 0}

    asyncio.run(scenario())
