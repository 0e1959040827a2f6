"""Synthesis you can trust: no fault of the voice service costs a listener a paragraph.

The real ``edge_tts`` client talks to the edge stand-in, which injects each fault the service is
known for. A run either produces an MP3 in which every segment is present exactly once, complete,
in order, or fails naming the paragraphs, with nothing written; the segments that did succeed are
cached, so the next run asks only for the missing ones. The episode is checked from its frames and
its subtitles against what the stand-in says a complete answer is (``tests/standin/verify.py``),
never from the exit code alone.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import edge_tts.communicate
import edge_tts.voices
import pytest
from click.testing import CliRunner

from newsreader import pipeline
from newsreader.cli import main
from newsreader.config import Settings
from newsreader.errors import SegmentsFailed
from newsreader.models import Script, Segment, SegmentKind
from newsreader.synth.cache import SegmentCache, cache_key
from newsreader.synth.edge import EdgeEngine
from newsreader.synth.scheduler import MAX_RETRY_AFTER, Limiter, RunStats
from tests.audio import ffmpeg_errors
from tests.standin.server import FAULTS, EdgeStandin, keyed_faults
from tests.standin.verify import episode_problems, frame_runs, strip_id3v2

VOICE = "zh-CN-YunyangNeural"  # the default voice, so CLI runs and Settings agree
WORDS = (
    "市民", "图书馆", "社区", "书房", "读者", "夜间", "开放", "服务", "志愿者", "活动",
    "孩子", "老人", "周末", "阅读", "城市", "文化", "公园", "街道", "讲座", "展览",
)  # fmt: skip
NUMERALS = "一二三四五六七八九"

# What the final message must say when a fault is all that is left (see Messages in the issue).
FAULT_WORDS = {
    "http_503": "network failure",
    "http_403_skew": "may have changed",
    "http_429": "rate limited",
    "http_404": "may have changed",
    "close_before_audio": "no audio returned",
    "close_mid_audio": "audio cut off",
    "stall": "stalled past the deadline",
    "unknown_path": "may have changed",
    "malformed_metadata": "may have changed",
    "no_turn_end": "audio cut off",
    "truncated_boundaries": "audio cut off",
    "short_audio": "audio cut off",
}


def chinese_number(n: int) -> str:
    tens, ones = divmod(n, 10)
    head = "" if tens == 0 else "十" if tens == 1 else NUMERALS[tens - 1] + "十"
    return head + (NUMERALS[ones - 1] if ones else "")


def make_article(paragraphs: int) -> str:
    """A headline and ``paragraphs`` two-sentence paragraphs of different lengths.

    Every sentence stays under the 24 characters of one subtitle cue, so each sentence is one cue.
    """
    words = itertools.cycle(WORDS)
    lines = ["城市书房开到家门口"]
    for i in range(1, paragraphs + 1):
        first = "".join(next(words) for _ in range(2 + i % 4))
        second = "".join(next(words) for _ in range(2 + i % 5))
        lines.append(f"第{chinese_number(i)}段说{first}。{second}！")
    return "\n\n".join(lines) + "\n"


@pytest.fixture
def article_file(tmp_path: Path) -> Path:
    """A 30-segment article: the headline and 29 paragraphs."""
    path = tmp_path / "article.txt"
    path.write_text(make_article(29), encoding="utf-8")
    return path


@pytest.fixture
def small_article(tmp_path: Path) -> Path:
    path = tmp_path / "small.txt"
    path.write_text(make_article(4), encoding="utf-8")
    return path


def edge_settings(tmp_path: Path, **changes: object) -> Settings:
    values: dict[str, object] = {
        "engine": "edge",
        "voice": VOICE,
        "concurrency": 4,
        "retries": 4,
        "backoff": 0.01,
        "request_timeout": 5.0,
        "cache_dir": tmp_path / "cache",
    }
    values.update(changes)
    return Settings(**values)  # type: ignore[arg-type]


def script_of(source: Path, settings: Settings) -> Script:
    return pipeline.make_script(pipeline.load_article(str(source), settings), settings)


def read(source: Path, out: Path, settings: Settings) -> pipeline.Rendered:
    """What ``newsreader read SOURCE -o OUT --subtitles OUT.vtt`` does, with any Settings."""
    article = pipeline.load_article(str(source), settings)
    script = pipeline.make_script(article, settings)

    async def render() -> pipeline.Rendered:
        # A guard for the test itself: a stall that escaped its deadline fails here, not hangs.
        return await asyncio.wait_for(pipeline.render(script, settings), 30)

    rendered = asyncio.run(render())
    pipeline.write_outputs(rendered, article, script, out, out.with_suffix(".vtt"))
    return rendered


def cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stderr


def assert_complete(out: Path, script: Script, edge: EdgeStandin) -> None:
    vtt = out.with_suffix(".vtt").read_text(encoding="utf-8")
    assert episode_problems(out.read_bytes(), script.segments, edge.plan, vtt) == []


def assert_complete_mp3(out: Path, script: Script, edge: EdgeStandin) -> None:
    assert episode_problems(out.read_bytes(), script.segments, edge.plan) == []


def assert_nothing_written(out: Path) -> None:
    assert not out.exists()
    assert not out.with_suffix(".vtt").exists()
    assert list(out.parent.glob("*.tmp")) == []


def place(segment: Segment) -> str:
    if segment.kind is SegmentKind.TITLE:
        return "the title"
    return f"paragraph {segment.block + 1}"


def named_places(message: str) -> set[str]:
    match = re.search(r"\): (.+?)\. Nothing was written", message)
    assert match, message
    return set(match.group(1).split(", "))


def uncached(script: Script, settings: Settings) -> set[int]:
    cache = SegmentCache(settings.cache_dir)
    voice = EdgeEngine().voice_id(settings)
    return {seg.index for seg in script.segments if cache.get(cache_key(voice, seg), seg) is None}


def assert_names_exactly_the_missing(
    message: str, failed: tuple[int, ...], script: Script, settings: Settings
) -> set[int]:
    """The message names exactly the segments that are not in the cache; returns them."""
    missing = uncached(script, settings)
    assert set(failed) == missing
    assert named_places(message) == {place(script.segments[i]) for i in missing}
    assert message.startswith(f"{len(missing)} of {len(script.segments)} segments failed")
    return missing


def requested_texts(edge: EdgeStandin, since: int) -> set[str]:
    return {request.text for request in edge.requests[since:]}


# -- every fault in 30% of requests -----------------------------------------------------------


@pytest.mark.parametrize("fault", FAULTS)
def test_a_fault_costs_no_paragraph(
    fault: str, edge_standin: EdgeStandin, article_file: Path, tmp_path: Path
) -> None:
    edge_standin.configure(retry_after=0.05)
    settings = edge_settings(tmp_path, retries=1, request_timeout=0.25 if fault == "stall" else 5)
    script = script_of(article_file, settings)
    assert len(script.segments) == 30
    out = tmp_path / "episode.mp3"

    # 1. The fault in 30% of requests, and in every request after the 20th, so that some
    #    segments certainly fail: the run names exactly those and writes nothing.
    edge_standin.set_faults(chooser=keyed_faults({fault: 0.3}, seed=1, always_after=20))
    with pytest.raises(SegmentsFailed) as caught:
        read(article_file, out, settings)
    message = caught.value.message
    assert FAULT_WORDS[fault] in message
    assert_nothing_written(out)
    missing = assert_names_exactly_the_missing(message, caught.value.failed, script, settings)
    assert 0 < len(missing) < len(script.segments)  # the others succeeded and were cached
    assert set(caught.value.kinds) == missing

    # 2. Run again with the fault in 30% of requests and the usual retries. Only the missing
    #    segments are asked for; the episode is complete. (Five tries can all meet a 30% fault:
    #    then the run names what is still missing, and a third run, without faults, finishes.)
    settings = replace(settings, retries=4)
    for chooser in (keyed_faults({fault: 0.3}, seed=2), None):
        edge_standin.set_faults(chooser=chooser)
        before = len(edge_standin.requests)
        wanted = {script.segments[i].text for i in missing}
        try:
            read(article_file, out, settings)
        except SegmentsFailed as still:
            assert requested_texts(edge_standin, before) <= wanted
            assert_nothing_written(out)
            now = assert_names_exactly_the_missing(still.message, still.failed, script, settings)
            assert now < missing
            missing = now
            continue
        assert requested_texts(edge_standin, before) == wanted
        break
    assert_complete(out, script, edge_standin)


def test_newsreader_read_with_every_fault_mixed_in(
    edge_standin: EdgeStandin, article_file: Path, tmp_path: Path
) -> None:
    """The CLI itself, with all the faults together in 30% of requests."""
    edge_standin.configure(retry_after=0.05)
    edge_standin.set_faults(
        chooser=keyed_faults({fault: 0.3 / len(FAULTS) for fault in FAULTS}, seed=5)
    )
    out = tmp_path / "episode.mp3"
    args = (
        *("read", str(article_file), "-o", str(out), "--subtitles", str(out.with_suffix(".vtt"))),
        *("--engine", "edge", "--cache-dir", str(tmp_path / "cache"), "--timeout", "0.5"),
        *("--loudness", "off"),  # the stand-in's own frames, checked bit for bit
    )
    code, err = cli(*args)
    settings = edge_settings(tmp_path)
    script = script_of(article_file, settings)
    if code != 0:  # all five tries of a segment met a fault: named, nothing written
        assert code == 5, err
        assert_nothing_written(out)
        missing = uncached(script, settings)
        assert missing and named_places(err.strip()) == {place(script.segments[i]) for i in missing}
        edge_standin.set_faults()
        code, err = cli(*args)
    assert code == 0, err
    assert f"wrote {out}" in err and "engine edge" in err
    assert_complete(out, script, edge_standin)
    assert len(edge_standin.faults_applied) >= 5  # the faults really happened


# -- connections, rate limits, deadlines -------------------------------------------------------


def test_a_run_never_opens_more_connections_than_its_cap(
    edge_standin: EdgeStandin, article_file: Path, tmp_path: Path
) -> None:
    # Every fault but 429 (which lowers the run's concurrency on purpose: see the next test).
    # Stalls matter most here: a stalled connection must be hung up before its slot is reused.
    faults = [fault for fault in FAULTS if fault != "http_429"]
    edge_standin.configure(first_audio_latency=0.05)
    edge_standin.set_faults(chooser=keyed_faults({fault: 0.3 / len(faults) for fault in faults}))
    settings = edge_settings(tmp_path, concurrency=3, request_timeout=0.3)
    out = tmp_path / "capped.mp3"
    rendered = read(article_file, out, settings)
    assert edge_standin.max_open_connections == 3  # reached, never passed
    assert rendered.stats.retries > 0
    assert_complete(out, script_of(article_file, settings), edge_standin)


def test_429_at_the_services_cap_backs_off_and_carries_on(
    edge_standin: EdgeStandin, article_file: Path, tmp_path: Path
) -> None:
    """The service allows 2 connections, the run wants 4: it waits as told, then fits in."""
    retry_after = 0.5
    edge_standin.configure(max_connections=2, retry_after=retry_after, first_audio_latency=0.1)
    settings = edge_settings(tmp_path, concurrency=4)
    limiter = Limiter(settings.concurrency)
    article = pipeline.load_article(str(article_file), settings)
    script = pipeline.make_script(article, settings)
    rendered = asyncio.run(pipeline.render(script, settings, limiter=limiter))
    out = tmp_path / "limited.mp3"
    pipeline.write_outputs(rendered, article, script, out, out.with_suffix(".vtt"))
    assert_complete(out, script, edge_standin)

    log = edge_standin.handshake_log
    refusals = [h for h in log if h.status == 429]
    assert refusals, "the run never met the service's cap"
    # Retry-After honoured: after a 429, nothing starts until it has passed (allowing 0.15 s for
    # requests that had already set off when the 429 arrived).
    for refusal in refusals:
        early = [h for h in log if refusal.at + 0.15 < h.at < refusal.at + retry_after - 0.05]
        assert early == [], f"handshakes {[h.number for h in early]} ignored Retry-After"
    # It adapted instead of hammering: a few 429s for 30 segments (one per probe for more room),
    # where a run that kept trying 4 at a time against a cap of 2 would meet about 30.
    assert len(refusals) <= 8
    assert rendered.stats.failures["rate_limit"] == len(refusals)


def test_read_is_adaptive_by_default_and_says_where_it_settled(
    edge_standin: EdgeStandin, article_file: Path, tmp_path: Path
) -> None:
    """The service takes 5 connections at once: the default run finds that, with one probe
    beyond it at a time, and its summary says so; ``--concurrency`` pins the level."""
    edge_standin.configure(max_connections=5, retry_after=0.1, first_audio_latency=0.05)
    out = tmp_path / "adaptive.mp3"
    # Loudness off: the stand-in's own frames, checked bit for bit.
    common = ("--engine", "edge", "--no-cache", "--max-concurrency", "8", "--loudness", "off")
    code, err = cli("read", str(article_file), "-o", str(out), *common)
    assert code == 0, err
    assert edge_standin.max_open_connections == 5
    assert edge_standin.max_asked_connections <= 6
    settled = re.search(r"concurrency settled at (\d+) \(at most 8\)", err)
    assert settled, err
    assert 4 <= int(settled[1]) <= 6
    assert_complete_mp3(out, script_of(article_file, edge_settings(tmp_path)), edge_standin)

    edge_standin.reset()
    edge_standin.configure(max_connections=5, first_audio_latency=0.05)
    code, err = cli("read", str(article_file), "-o", str(out), *common, "--concurrency", "2")
    assert code == 0, err
    assert "concurrency settled" not in err
    assert edge_standin.max_asked_connections == 2


@pytest.mark.parametrize(
    ("option", "value"), [("--max-concurrency", "0"), ("--max-concurrency", "17")]
)
def test_max_concurrency_out_of_range_is_one_line(
    option: str, value: str, small_article: Path, tmp_path: Path
) -> None:
    code, err = cli("read", str(small_article), "-o", str(tmp_path / "x.mp3"), option, value)
    assert code == 2, err
    assert err.strip() == (
        f"newsreader: error: {option} {value} is out of range: use 1 to 16 "
        "(the online service blocks clients that open many connections)."
    )


def test_persistent_429_says_rate_limited(
    edge_standin: EdgeStandin, small_article: Path, tmp_path: Path
) -> None:
    edge_standin.configure(retry_after=0.05)
    edge_standin.set_faults(chooser=lambda _number, text: "http_429" if text is None else None)
    out = tmp_path / "never.mp3"
    code, err = cli(
        *("read", str(small_article), "-o", str(out), "--engine", "edge", "--retries", "1"),
        *("--cache-dir", str(tmp_path / "cache")),
    )
    assert_one_line(code, err, "rate limited by the voice service")
    assert "lower --concurrency" in err
    assert_nothing_written(out)
    assert edge_standin.requests == []


def test_a_long_retry_after_is_not_waited_out(
    edge_standin: EdgeStandin, small_article: Path, tmp_path: Path
) -> None:
    """Told to come back in an hour, the run fails now, after one try per segment."""
    edge_standin.configure(retry_after=3600)
    edge_standin.set_faults(chooser=lambda _number, text: "http_429" if text is None else None)
    settings = edge_settings(tmp_path)
    script = script_of(small_article, settings)
    with pytest.raises(SegmentsFailed, match="rate limited") as caught:
        read(small_article, tmp_path / "never.mp3", settings)
    assert set(caught.value.kinds.values()) == {"rate_limit"}
    assert edge_standin.handshakes == len(script.segments)
    assert MAX_RETRY_AFTER < 3600


def test_stalled_requests_never_hold_the_run(
    edge_standin: EdgeStandin, small_article: Path, tmp_path: Path
) -> None:
    edge_standin.set_faults(chooser=lambda _number, text: "stall" if text else None)
    settings = edge_settings(tmp_path, request_timeout=0.3, retries=1)
    script = script_of(small_article, settings)
    started = time.monotonic()
    with pytest.raises(SegmentsFailed, match="stalled past the deadline") as caught:
        read(small_article, tmp_path / "never.mp3", settings)
    elapsed = time.monotonic() - started
    assert set(caught.value.failed) == {seg.index for seg in script.segments}
    # Two waves of four, two attempts each, 0.3 s per attempt: about 1.2 s. A stall that held
    # the run would end only at the test's own 30 s guard.
    assert elapsed < 6
    assert len(edge_standin.requests) == 2 * len(script.segments)
    assert edge_standin.wait_idle(2.0)  # every stalled connection was hung up


# -- what the messages say ---------------------------------------------------------------------


def assert_one_line(code: int, stderr: str, words: str) -> None:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert code == 5, stderr
    assert len(lines) == 1, stderr
    assert lines[0].startswith("newsreader: error: ")
    assert words in lines[0], lines[0]


def test_unknown_responses_say_the_service_may_have_changed(
    edge_standin: EdgeStandin, small_article: Path, tmp_path: Path
) -> None:
    edge_standin.set_faults(chooser=lambda _number, text: "unknown_path" if text else None)
    out = tmp_path / "never.mp3"
    code, err = cli(
        *("read", str(small_article), "-o", str(out), "--engine", "edge", "--retries", "1"),
        "--no-cache",
    )
    assert_one_line(code, err, "answered in an unknown way (it may have changed)")
    assert "newer edge-tts" in err
    assert "everything is synthesized again (--no-cache)" in err
    assert_nothing_written(out)


@pytest.fixture
def edge_goes_away(edge_standin: EdgeStandin, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """An edge address that accepts one connection (the start-up probe), then refuses all."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]

    def accept_once() -> None:
        connection, _ = listener.accept()
        connection.close()
        listener.close()

    thread = threading.Thread(target=accept_once, daemon=True)
    thread.start()
    url = f"ws://127.0.0.1:{port}/edge/v1?TrustedClientToken=x"
    monkeypatch.setattr(edge_tts.communicate, "WSS_URL", url)
    yield
    thread.join(timeout=5)


def test_connection_refused_partway_is_a_network_failure(
    edge_goes_away: None, small_article: Path, tmp_path: Path
) -> None:
    out = tmp_path / "never.mp3"
    code, err = cli(
        *("read", str(small_article), "-o", str(out), "--engine", "auto", "--retries", "1"),
        *("--cache-dir", str(tmp_path / "cache")),
    )
    assert_one_line(code, err, "(network failure)")
    assert "Check the network connection" in err
    assert_nothing_written(out)


def test_an_unknown_voice_is_bad_input(
    edge_standin: EdgeStandin, small_article: Path, tmp_path: Path
) -> None:
    # With the voice list reachable, the voice is refused before any request (exit 2).
    code, err = cli("read", str(small_article), "--engine", "edge", "--voice", "zh-CN-NoNeural")
    assert code == 2 and "unknown voice zh-CN-NoNeural" in err
    assert edge_standin.requests == []
    # With the list down, the service's silence says so: no audio, check --voice.
    edge_standin.configure(voice_list_status=503)
    out = tmp_path / "never.mp3"
    code, err = cli(
        *("read", str(small_article), "-o", str(out), "--engine", "edge", "--retries", "0"),
        *("--voice", "zh-CN-NoNeural", "--no-cache"),
    )
    assert_one_line(code, err, "(no audio returned)")
    assert "Check --voice" in err
    assert_nothing_written(out)


# -- one output, one voice ---------------------------------------------------------------------


def fail_paragraph(edge: EdgeStandin, script: Script, block: int) -> None:
    """Every request for that paragraph's text is cut off mid-audio."""
    texts = {seg.text for seg in script.segments if seg.block == block}
    edge.set_faults(chooser=lambda _number, text: "close_mid_audio" if text in texts else None)


def test_auto_fails_rather_than_mixing_voices(
    edge_standin: EdgeStandin, article_file: Path, tmp_path: Path
) -> None:
    fail_paragraph(edge_standin, script_of(article_file, edge_settings(tmp_path)), block=4)
    out = tmp_path / "never.mp3"
    code, err = cli(
        *("read", str(article_file), "-o", str(out), "--retries", "1"),
        *("--cache-dir", str(tmp_path / "cache")),
    )
    assert_one_line(
        code, err, "1 of 30 segments failed after retries (audio cut off): paragraph 5."
    )
    assert "espeak" not in err
    assert_nothing_written(out)


def test_fallback_reads_everything_with_the_embedded_voice(
    edge_standin: EdgeStandin, small_article: Path, tmp_path: Path
) -> None:
    script = script_of(small_article, edge_settings(tmp_path))
    fail_paragraph(edge_standin, script, block=2)
    out = tmp_path / "espeak.mp3"
    code, err = cli(
        *("read", str(small_article), "-o", str(out), "--retries", "1", "--fallback", "espeak"),
        *("--cache-dir", str(tmp_path / "cache")),
    )
    assert code == 0, err
    assert "warning: the online voice failed for 1 of 5 segments (audio cut off)" in err
    assert "engine espeak" in err
    assert ffmpeg_errors(out) == ""
    # Not one frame of edge's audio in it: the whole article was read again by espeak.
    assert [kind for kind, _ in frame_runs(strip_id3v2(out.read_bytes()))].count("tone") == 0
    assert len(edge_standin.requests) >= len(script.segments)  # edge was tried first
    # The summary speaks of the last run's concurrency, never the two runs' levels added up:
    # the embedded voice runs pinned (two segments at a time), so no adaptive level is claimed.
    assert "concurrency settled" not in err and "at most 32" not in err, err


def test_stats_of_an_engine_and_its_fallback_add_counts_not_levels() -> None:
    edge = RunStats(requests=7, retries=2, level=9, peak=10, adaptive_limit=16)
    edge.failures["truncated"] += 2
    espeak = RunStats(requests=5, cache_hits=1, level=5, peak=4, adaptive_limit=16)
    espeak.failures["truncated"] += 1
    both = pipeline._merged([edge, espeak])
    assert (both.requests, both.retries, both.cache_hits) == (12, 2, 1)
    assert both.failures == {"truncated": 3}
    assert (both.level, both.peak, both.adaptive_limit) == (5, 10, 16)  # last, most, last
    assert both.concurrency_note() == "concurrency settled at 5 (at most 16)"


def test_fallback_is_only_for_edge(small_article: Path) -> None:
    code, err = cli("read", str(small_article), "--engine", "espeak", "--fallback", "espeak")
    assert code == 2 and "--fallback espeak is for --engine auto or edge" in err


def test_edge_unreachable_with_fallback_starts_with_the_embedded_voice(
    small_article: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(edge_tts.communicate, "WSS_URL", "ws://127.0.0.1:9/edge/v1?x=1")
    monkeypatch.setattr(edge_tts.voices, "VOICE_LIST", "http://127.0.0.1:9/voices?x=1")
    out = tmp_path / "offline.mp3"
    code, err = cli(
        *("read", str(small_article), "-o", str(out), "--engine", "edge"),
        *("--fallback", "espeak", "--no-cache"),
    )
    assert code == 0, err
    assert "warning: online voice unreachable" in err and "engine espeak" in err
    assert ffmpeg_errors(out) == ""


# -- the cache ---------------------------------------------------------------------------------


def test_a_run_from_the_cache_needs_no_network(
    edge_standin: EdgeStandin, small_article: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "first.mp3"
    args = ("read", str(small_article), "--cache-dir", str(tmp_path / "cache"))
    code, err = cli(*args, "-o", str(out))
    assert code == 0 and "engine edge" in err, err
    voice_lists = edge_standin.voice_list_requests
    # Offline now: engine auto would pick the embedded voice, but every segment is cached in
    # edge's voice, so the run reads them without probing or asking for the voice list.
    monkeypatch.setattr(edge_tts.communicate, "WSS_URL", "ws://127.0.0.1:9/edge/v1?x=1")
    monkeypatch.setattr(edge_tts.voices, "VOICE_LIST", "http://127.0.0.1:9/voices?x=1")
    again = tmp_path / "again.mp3"
    code, err = cli(*args, "-o", str(again))
    assert code == 0, err
    assert "warning" not in err
    assert "5 from cache, 0 requests), engine edge" in err
    assert again.read_bytes() == out.read_bytes()
    assert edge_standin.voice_list_requests == voice_lists


def test_rendered_repr_stays_short(
    edge_standin: EdgeStandin, small_article: Path, tmp_path: Path
) -> None:
    # asyncio.run builds the repr of its main task's result when it finishes: not the whole MP3.
    rendered = read(small_article, tmp_path / "r.mp3", edge_settings(tmp_path))
    assert len(repr(rendered)) < 200
    assert "engine='edge'" in repr(rendered)
