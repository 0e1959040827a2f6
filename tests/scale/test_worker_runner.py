"""The reading runner the embedded service shares with workers, with finished files in S3.

``newsreader serve --storage s3://…`` without Redis: the embedded service (SQLite rows, the live
spill file) makes each reading's files under ``--data/outgoing`` and puts them in the bucket,
the MP3 last; nothing is left in the data folder.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from newsreader.audio.mp3 import bare_frames
from newsreader.service.readings import Readings
from newsreader.service.request import JobRequest
from newsreader.service.security import AddressPolicy
from newsreader.service.store import JobStore
from newsreader.storage import open_storage
from tests.audio import ffmpeg_errors
from tests.s3server import S3Bucket
from tests.service.conftest import ARTICLE, make_config
from tests.standin.server import EdgeStandin


def test_the_embedded_service_puts_finished_readings_in_s3(
    tmp_path: Path, edge_standin: EdgeStandin, s3_bucket: S3Bucket
) -> None:
    spec = f"{s3_bucket.spec}/embedded"
    config = make_config(
        tmp_path / "data", storage=spec, s3_endpoint=s3_bucket.endpoint, loudness=None
    )
    left = tmp_path / "data" / "outgoing" / "0123.mp3"  # made by a run that was stopped
    left.parent.mkdir(parents=True)
    left.write_bytes(b"\xff" * 144)

    async def scenario() -> None:
        store = JobStore(config.database)
        readings = Readings(config, store, AddressPolicy())
        assert not left.exists()
        try:
            row, created = readings.submit(JobRequest(kind="text", content=ARTICLE))
            assert created
            live = readings.live(row.id)
            assert live is not None
            heard = bytearray()
            async for chunk in live.audio.follow():
                heard += chunk
            deadline = time.monotonic() + 20
            while True:
                current = store.get(row.id)
                assert current is not None
                if current.status in ("done", "failed"):
                    break
                assert time.monotonic() < deadline
                await asyncio.sleep(0.02)
            row = current
            assert row.status == "done", row
            assert readings.stored(row.id)
            again, created = readings.submit(JobRequest(kind="text", content=ARTICLE))
            assert not created and again.id == row.id  # done and in the bucket: not made again

            storage = open_storage(spec, tmp_path, endpoint=s3_bucket.endpoint)
            audio = storage.get_bytes(f"readings/{row.id}.mp3")
            assert audio is not None and ffmpeg_errors(audio) == ""
            assert bare_frames(audio) == bytes(heard)
            stat = storage.stat(f"readings/{row.id}.mp3")
            assert stat is not None and stat.size == row.bytes
            assert storage.get_bytes(f"readings/{row.id}.vtt") is not None
            assert storage.get_bytes(f"readings/{row.id}.json") is not None
            data = tmp_path / "data"
            assert list((data / "outgoing").iterdir()) == []
            assert list((data / "readings").iterdir()) == []
        finally:
            await readings.stop()
            store.close()

    asyncio.run(scenario())


def test_a_bucket_gone_midway_fails_the_reading_and_leaves_nothing(
    tmp_path: Path, edge_standin: EdgeStandin, s3_bucket: S3Bucket
) -> None:
    config = make_config(tmp_path / "data", storage=s3_bucket.spec, loudness=None)

    async def scenario() -> None:
        store = JobStore(config.database)
        readings = Readings(config, store, AddressPolicy())  # the bucket is checked here
        s3_bucket.server.remove_bucket(s3_bucket.name)
        try:
            row, _ = readings.submit(JobRequest(kind="text", content=ARTICLE))
            deadline = time.monotonic() + 20
            while True:
                current = store.get(row.id)
                assert current is not None
                if current.status in ("done", "failed"):
                    break
                assert time.monotonic() < deadline
                await asyncio.sleep(0.02)
            assert current.status == "failed"
            assert current.error_code == "storage_unavailable", current
            assert current.error_message is not None and s3_bucket.name in current.error_message
            assert list((tmp_path / "data" / "outgoing").iterdir()) == []
            assert list((tmp_path / "data" / "readings").iterdir()) == []
        finally:
            await readings.stop()
            store.close()
            s3_bucket.server.create_bucket(s3_bucket.name)  # for the fixture to remove

    asyncio.run(scenario())
