"""kill -9 at any moment: the feed never names a missing or partial file, and the next run
finishes the work with no duplicate episode.

``newsreader feed`` runs in a subprocess against the edge stand-in (whose latency keeps each
request in flight long enough to kill the process mid-synthesis). The test watches the output
folder the whole time and kills the process at chosen moments: mid-synthesis, right after an
episode's files appear, mid-write (a temporary file exists), right after feed.xml changes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from lxml import etree

from tests.podcast.helpers import (
    BASE_URL,
    PODCAST,
    check_files,
    episode_files,
    named_files,
    read_our_feed,
    run_feed,
)
from tests.podcast.newsroom import STORIES, Newsroom, local_file
from tests.standin.server import EdgeStandin
from tests.webserver import LocalWeb

_LAUNCH = (
    "import sys; from tests.standin.fixtures import point_edge_tts_at; "
    "point_edge_tts_at(sys.argv.pop(1)); from newsreader.cli import main; "
    "main(prog_name='newsreader')"
)


def _start(
    standin: EdgeStandin, source: str, out: Path, cache: Path, log: Path
) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-c", _LAUNCH, f"127.0.0.1:{standin.port}", "feed", source]
    command += ["--out", str(out), "--base-url", BASE_URL, "--engine", "edge"]
    command += ["--cache-dir", str(cache), "--concurrency", "4", "-q"]
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root)}
    with log.open("ab") as errors:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            command, cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=errors
        )


def _consistency_error(out: Path) -> str | None:
    """What is wrong with feed.xml as a listener would meet it now, or None."""
    feed = out / "feed.xml"
    if not feed.exists():
        return None
    data = feed.read_bytes()
    try:
        root = etree.fromstring(data)
    except etree.XMLSyntaxError as error:
        return f"feed.xml is not well-formed: {error}"
    guids = [g.text for g in root.iter("guid")]
    if len(guids) != len(set(guids)):
        return f"duplicate guids: {guids}"
    for item in root.iter("item"):
        enclosure = item.find("enclosure")
        audio = local_file(enclosure.get("url"), BASE_URL, out)
        if not audio.exists() or audio.stat().st_size != int(enclosure.get("length")):
            return f"{audio.name} is missing or not {enclosure.get('length')} bytes"
        for tag in ("transcript", "chapters"):
            path = local_file(item.find(f"{PODCAST}{tag}").get("url"), BASE_URL, out)
            if not path.exists() or path.stat().st_size == 0:
                return f"{path.name} is missing or empty"
    return None


def _watch(
    process: subprocess.Popen[bytes], out: Path, trigger: Callable[[], bool]
) -> tuple[bool, int]:
    """Check the folder until the process ends; kill -9 it when ``trigger()`` says so.

    Returns (killed, observations). Fails the test on any inconsistency seen.
    """
    observations = 0
    tick = 0
    while process.poll() is None:
        tick += 1
        if tick % 5 == 0:  # the full check reads feed.xml and every file: every ~5 ms
            error = _consistency_error(out)
            if error is not None and _consistency_error(out) is not None:
                # Not a race with a rewrite of feed.xml between our reads: a real inconsistency.
                process.kill()
                raise AssertionError(f"after {observations} observations: {error}")
            observations += 1
        if trigger():  # cheap: a temporary file lives for a few milliseconds
            process.send_signal(signal.SIGKILL)
            process.wait()
            return True, observations
        time.sleep(0.001)
    return False, observations


def test_kill_9_at_any_moment(web: LocalWeb, tmp_path: Path, edge_standin: EdgeStandin) -> None:
    edge_standin.configure(first_audio_latency=0.15)
    stories = STORIES[1:]
    room = Newsroom(web, stories=list(stories))
    source = room.publish()
    out, cache = tmp_path / "podcast", tmp_path / "cache"
    episodes = out / "episodes"

    def files() -> set[str]:
        return {p.name for p in episodes.iterdir()} if episodes.is_dir() else set()

    def mid_synthesis() -> Callable[[], bool]:
        start = len(edge_standin.requests)
        return lambda: len(edge_standin.requests) > start

    def new_file(suffix: str) -> Callable[[], bool]:
        before = files()
        return lambda: any(name.endswith(suffix) for name in files() - before)

    def episode_published() -> Callable[[], bool]:
        feed = out / "feed.xml"

        def items() -> int:
            try:
                return len(etree.fromstring(feed.read_bytes()).findall("channel/item"))
            except (OSError, etree.XMLSyntaxError):
                return 0

        before = items()
        return lambda: items() > before

    log = tmp_path / "stderr.log"
    moments = [mid_synthesis, lambda: new_file(".mp3"), lambda: new_file(".tmp"), episode_published]
    kills = observations = 0
    for moment in moments:
        process = _start(edge_standin, source, out, cache, log)
        killed, seen = _watch(process, out, moment())
        kills += killed
        observations += seen
        if killed:
            assert _consistency_error(out) is None
        else:
            assert process.returncode == 0, log.read_text()
    assert kills >= 3, f"only {kills} kills: the runs ended before the chosen moments"

    assert observations > 50

    # one more run, left alone, finishes the work: every story once, every number exact
    finish = run_feed(source, out, "--concurrency", "4", engine="edge", cache=cache)
    assert finish.exit_code == 0, finish.output
    _, items = read_our_feed(out)
    assert sorted(i.title for i in items) == sorted(s.title for s in stories)
    assert len({i.guid for i in items}) == len(stories)
    check_files(items)
    assert files() == named_files(items) == episode_files(out)  # no temporary, no orphan
    assert not [p.name for p in out.iterdir() if p.name.endswith(".tmp")]

    # and a run after that has nothing left to do
    requests = len(edge_standin.requests)
    again = run_feed(source, out, engine="edge", cache=cache)
    assert again.exit_code == 0, again.output
    assert f"0 new, 0 updated, {len(stories)} unchanged" in again.output
    assert len(edge_standin.requests) == requests
