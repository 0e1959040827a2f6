"""The service writes a reading's finished file as its segments come, as ``read`` does."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from newsreader.audio.mp3 import bare_frames, read_info_frame
from newsreader.models import FRAME_BYTES
from tests.service.conftest import ARTICLE, in_process, make_config, wait_for
from tests.standin.server import EdgeStandin


def test_the_finished_file_grows_beside_its_place_and_lands_whole(
    tmp_path: Path, edge_standin: EdgeStandin
) -> None:
    edge_standin.configure(first_audio_latency=0.3)
    # The live stream is the voice's own level; off, the finished file is the same frames.
    config = make_config(tmp_path, segment_concurrency=1, voice_connections=1, loudness=None)
    readings = tmp_path / "readings"
    readings.mkdir()
    left = readings / ".0123abcd.mp3.deadbeef.tmp"  # a body a stopped server left behind
    left.write_bytes(b"\xff" * 1000)
    kept = readings / "0123abcd.mp3"
    kept.write_bytes(b"ID3")

    async def scenario() -> None:
        async with in_process(config) as (_app, client):
            assert not left.exists() and kept.exists()
            accepted = (await client.post("/api/readings", json={"text": ARTICLE})).json()
            reading_id, links = accepted["id"], accepted["links"]
            deadline = time.monotonic() + 10
            while (await client.get(links["self"])).json()["audio_ready"] == 0:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.02)
            # the first segment is in the body beside the finished file's place, not in memory
            [body] = readings.glob(f".{reading_id}.mp3.*.tmp")
            assert body.stat().st_size > 0 and body.stat().st_size % FRAME_BYTES == 0
            assert not (readings / f"{reading_id}.mp3").exists()
            streamed = (await client.get(links["stream"])).content
            reading = await wait_for(client, reading_id)
            assert reading["status"] == "done", reading
            finished = (await client.get(links["audio"])).content
            assert bare_frames(finished) == streamed
            start = 10 + sum((b & 0x7F) << (7 * (3 - i)) for i, b in enumerate(finished[6:10]))
            info = read_info_frame(finished[start:])
            assert info is not None and info[0] == len(streamed) // FRAME_BYTES
            assert sorted(p.name for p in readings.iterdir()) == sorted(
                ["0123abcd.mp3", f"{reading_id}.mp3", f"{reading_id}.vtt", f"{reading_id}.json"]
            )

    asyncio.run(scenario())
