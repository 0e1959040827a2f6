"""The segment cache in a shared S3 bucket: what one worker made, another one reuses."""

from __future__ import annotations

import asyncio
import json
import random
import socket
import threading
import time
from pathlib import Path

import pytest

from newsreader.models import FRAME_BYTES, Pause, Segment, SegmentAudio, SentenceTiming
from newsreader.storage import open_storage
from newsreader.storage.directory import DirectoryStorage
from newsreader.synth.cache import SegmentCache, cache_key
from newsreader.synth.edge import EdgeEngine
from newsreader.synth.scheduler import Scheduler
from tests.audio import make_script, make_segment
from tests.s3server import S3Bucket
from tests.standin.server import EdgeStandin, tone_mp3
from tests.synth.test_stalls import edge_settings, segments

FRAME = bytes.fromhex("FFF364C4") + bytes(140)


def audio(n: int, seg: Segment) -> SegmentAudio:
    step = n * 0.024 / len(seg.sentences)
    return SegmentAudio(
        mp3=FRAME * n,
        sentences=tuple(
            SentenceTiming(s, i * step, (i + 1) * step) for i, s in enumerate(seg.sentences)
        ),
    )


def worker_cache(bucket: S3Bucket, tmp_path: Path) -> SegmentCache:
    """A worker's cache: its own client of the shared bucket, no local folder."""
    return SegmentCache(None, storage=open_storage(f"{bucket.spec}/shared", tmp_path))


def test_a_second_worker_hits_what_the_first_stored(s3_bucket: S3Bucket, tmp_path: Path) -> None:
    first, second = worker_cache(s3_bucket, tmp_path), worker_cache(s3_bucket, tmp_path)
    assert first.remote and second.remote and first.enabled
    seg = make_segment(0, ("第一句。", "第二句。"), pause=Pause.PARAGRAPH)
    key = cache_key("edge:zh-CN-YunyangNeural", seg)
    assert second.get(key, seg) is None
    stored = audio(30, seg)
    first.put(key, stored)
    assert second.get(key, seg) == stored
    assert (second.hits, second.misses) == (1, 1)
    # the layout a folder cache has, under the storage's prefix
    listed = s3_bucket.client().list_objects_v2(Bucket=s3_bucket.name)["Contents"]
    assert sorted(item["Key"] for item in listed) == [
        f"shared/segments/{key[:2]}/{key}.json",
        f"shared/segments/{key[:2]}/{key}.mp3",
    ]


def test_missing_or_damaged_objects_are_misses(s3_bucket: S3Bucket, tmp_path: Path) -> None:
    cache = worker_cache(s3_bucket, tmp_path)
    storage = cache.storage
    assert storage is not None
    seg = make_segment(0, ("一句话。",), pause=Pause.PARAGRAPH)
    key = cache_key("x", seg)
    mp3_key, meta_key = f"segments/{key[:2]}/{key}.mp3", f"segments/{key[:2]}/{key}.json"
    cache.put(key, audio(10, seg))
    storage.delete(mp3_key)  # the JSON without its audio
    assert cache.get(key, seg) is None
    cache.put(key, audio(10, seg))
    storage.put_bytes(mp3_key, FRAME * 5, "audio/mpeg")  # shorter than the JSON says
    assert cache.get(key, seg) is None
    storage.put_bytes(meta_key, b"\xff{not json", "application/json")
    assert cache.get(key, seg) is None
    storage.put_bytes(meta_key, json.dumps({"bytes": 10 * FRAME_BYTES}).encode(), "x/y")
    storage.put_bytes(mp3_key, FRAME * 10, "audio/mpeg")
    assert cache.get(key, seg) is None  # no sentences
    assert (cache.hits, cache.misses) == (0, 4)


def test_a_failing_store_is_a_miss_and_is_left_alone_a_while(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A store that hangs up on every request: the first failure is a skipped write, and the
    store is not asked again for a while (so an unreachable store costs one wait, not one per
    segment)."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    accepted = 0

    with socket.socket() as broken:
        broken.bind(("127.0.0.1", 0))
        broken.listen(16)
        broken.settimeout(0.05)
        stop = threading.Event()

        def hang_up() -> None:
            nonlocal accepted
            while not stop.is_set():
                try:
                    connection, _ = broken.accept()
                except TimeoutError:
                    continue
                accepted += 1
                connection.close()

        thread = threading.Thread(target=hang_up, daemon=True)
        thread.start()
        try:
            endpoint = f"http://127.0.0.1:{broken.getsockname()[1]}"
            storage = open_storage("s3://news", tmp_path, endpoint=endpoint)
            cache = SegmentCache(None, storage=storage)
            cache.PAUSE_AFTER_FAILURE = 1.0  # 30 s in use
            seg = make_segment(0, ("一句话。",), pause=Pause.PARAGRAPH)
            cache.put("ab" * 32, audio(3, seg))  # no error
            asked = accepted
            assert asked >= 1
            assert cache.get("ab" * 32, seg) is None
            assert cache.get("cd" * 32, seg) is None
            cache.put("cd" * 32, audio(3, seg))
            assert accepted == asked  # left alone
            assert cache.misses == 2
            time.sleep(1.05)  # the pause is over
            assert cache.get("ab" * 32, seg) is None
            assert accepted > asked  # asked again
        finally:
            stop.set()
            thread.join(timeout=5)


def test_a_folder_cache_keeps_its_layout(tmp_path: Path) -> None:
    cache = SegmentCache(tmp_path)
    assert isinstance(cache.storage, DirectoryStorage) and not cache.remote
    seg = make_segment(0, ("一句话。",), pause=Pause.PARAGRAPH)
    key = cache_key("x", seg)
    cache.put(key, audio(4, seg))
    folder = tmp_path / "segments" / key[:2]
    assert sorted(p.name for p in folder.iterdir()) == [f"{key}.json", f"{key}.mp3"]
    assert (folder / f"{key}.mp3").read_bytes() == FRAME * 4
    assert json.loads((folder / f"{key}.json").read_text(encoding="utf-8")) == {
        "bytes": 4 * FRAME_BYTES,
        "sentences": [["一句话。", 0.0, 0.096]],
    }


def test_two_workers_synthesize_a_script_once(
    s3_bucket: S3Bucket, tmp_path: Path, edge_standin: EdgeStandin
) -> None:
    """Two schedulers (two workers) on one bucket: the second asks the voice for nothing."""
    parts = segments(12)
    script = make_script(parts, ("标题",))
    settings = edge_settings(concurrency=4)

    def run(cache: SegmentCache) -> tuple[list[SegmentAudio], int]:
        scheduler = Scheduler(EdgeEngine(), settings, cache, rng=random.Random(1))

        async def go() -> list[SegmentAudio]:
            return [piece async for piece in scheduler.run(script)]

        done = asyncio.run(asyncio.wait_for(go(), 60))
        return done, scheduler.stats.cache_hits

    made, hits = run(worker_cache(s3_bucket, tmp_path))
    asked = len(edge_standin.requests)
    assert hits == 0 and asked >= len(script.segments)
    reused, hits = run(worker_cache(s3_bucket, tmp_path))
    assert hits == len(script.segments)
    assert len(edge_standin.requests) == asked  # nothing asked of the voice again
    assert reused == made
    for piece, segment in zip(reused, script.segments, strict=True):
        assert piece.mp3 == tone_mp3(edge_standin.plan(segment.text).frames)
