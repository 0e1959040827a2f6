"""The segment cache: content addressing, atomic entries, damage is a miss."""

from __future__ import annotations

from pathlib import Path

from newsreader.models import FRAME_BYTES, Pause, Segment, SegmentAudio, SentenceTiming
from newsreader.synth.cache import SegmentCache, cache_key
from tests.audio import make_segment

FRAME = bytes.fromhex("FFF364C4") + bytes(140)


def segment(*sentences: str) -> Segment:
    return make_segment(0, sentences, pause=Pause.PARAGRAPH)


def audio(n: int, seg: Segment) -> SegmentAudio:
    step = n * 0.024 / len(seg.sentences)
    return SegmentAudio(
        mp3=FRAME * n,
        sentences=tuple(
            SentenceTiming(s, i * step, (i + 1) * step) for i, s in enumerate(seg.sentences)
        ),
    )


def test_key_depends_on_voice_and_text_not_on_position() -> None:
    a = segment("今天天气很好。")
    assert cache_key("edge:v1", a) == cache_key("edge:v1", segment("今天天气很好。"))
    assert cache_key("edge:v1", a) != cache_key("edge:v2", a)
    assert cache_key("edge:v1", a) != cache_key("edge:v1", segment("今天天气不好。"))
    # the same text split into different sentences is a different request
    assert cache_key("edge:v1", a) != cache_key("edge:v1", segment("今天", "天气很好。"))


def test_round_trip(tmp_path: Path) -> None:
    cache = SegmentCache(tmp_path)
    seg = segment("第一句。", "第二句。")
    key = cache_key("espeak:cmn", seg)
    assert cache.get(key, seg) is None
    stored = audio(25, seg)
    cache.put(key, stored)
    assert cache.get(key, seg) == stored
    assert (cache.hits, cache.misses) == (1, 1)
    assert not list(tmp_path.rglob("*.tmp"))


def test_damaged_entries_are_misses(tmp_path: Path) -> None:
    cache = SegmentCache(tmp_path)
    seg = segment("一句话。")
    key = cache_key("x", seg)
    cache.put(key, audio(10, seg))
    mp3 = next(tmp_path.rglob("*.mp3"))
    mp3.write_bytes(mp3.read_bytes()[: FRAME_BYTES * 5])  # truncated audio
    assert cache.get(key, seg) is None
    cache.put(key, audio(10, seg))
    meta = next(tmp_path.rglob("*.json"))
    meta.write_text("{not json", encoding="utf-8")
    assert cache.get(key, seg) is None


def test_disabled_cache_stores_nothing(tmp_path: Path) -> None:
    cache = SegmentCache(None)
    seg = segment("一句话。")
    cache.put("k", audio(3, seg))
    assert cache.get("k", seg) is None
    assert not list(tmp_path.iterdir())


def test_unwritable_cache_is_not_an_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    cache = SegmentCache(blocker)  # a file where the folder should be
    seg = segment("一句话。")
    cache.put("abcd", audio(3, seg))
    assert cache.get("abcd", seg) is None
