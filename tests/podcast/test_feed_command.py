"""`newsreader feed` end to end: a news feed and pages served over HTTP → a podcast feed.

Most runs use the embedded voice (fast); the test that counts synthesis requests uses the edge
stand-in. Every MP3 is measured by decoding it with ffmpeg.
"""

from __future__ import annotations

import fcntl
import json
import math
import struct
import zlib
from email.utils import parsedate_to_datetime
from pathlib import Path

from mutagen.id3 import ID3

from newsreader import pipeline
from newsreader.config import Settings
from tests.audio import decode_samples
from tests.podcast.helpers import (
    BASE_URL,
    SAMPLE_RATE,
    check_files,
    check_required_tags,
    episode_files,
    exact_ms,
    named_files,
    read_our_feed,
    run_feed,
)
from tests.podcast.newsroom import STORIES, Newsroom, rss
from tests.standin.server import EdgeStandin
from tests.webserver import LocalWeb, Route


def test_a_news_feed_becomes_a_complete_podcast_feed_and_stays_exact(
    web: LocalWeb, tmp_path: Path, segment_cache: Path
) -> None:
    room = Newsroom(web)
    source = room.publish()
    out = tmp_path / "podcast"

    first = run_feed(source, out, cache=segment_cache)
    assert first.exit_code == 0, first.output
    assert "3 new" in first.output
    check_required_tags(out)
    parsed, items = read_our_feed(out)
    assert parsed.feed.title == "本地新闻"  # the source feed's title by default
    # newest first, each with the article's own date and title
    by_date = sorted(room.stories, key=lambda s: s.published, reverse=True)
    assert [i.title for i in items] == [s.title for s in by_date]
    for item, story in zip(items, by_date, strict=True):
        assert parsedate_to_datetime(item.entry.published) == story.published
        assert item.entry.link == room.url(story)
        assert item.entry.summary == story.summary
    check_files(items)
    # the transcript holds the article's sentences; the summary pages' furniture is not read
    library = next(i for i in items if i.title == STORIES[0].title)
    transcript = library.transcript.read_text(encoding="utf-8")
    assert "本市第一家城市书房今天正式向市民开放。" in transcript
    assert "责任编辑" not in transcript and "首页" not in transcript
    assert episode_files(out) == named_files(items)  # nothing else lies around
    # without --image, a square 1400 px PNG cover that decodes whole
    cover = (out / "cover.png").read_bytes()
    assert cover[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", cover[16:24]) == (1400, 1400)
    idat = cover.index(b"IDAT")
    (size,) = struct.unpack(">I", cover[idat - 4 : idat])
    assert len(zlib.decompress(cover[idat + 4 : idat + 4 + size])) == 1400 * (1 + 1400 * 3)
    guids = {i.title: i.guid for i in items}
    feed_bytes = (out / "feed.xml").read_bytes()
    feed_stat = (out / "feed.xml").stat()

    # run again, nothing changed: nothing made, and feed.xml not even rewritten (its mtime is
    # what podcast apps' conditional GETs go by)
    second = run_feed(source, out, cache=segment_cache)
    assert second.exit_code == 0, second.output
    assert "no change to" in second.output and "0 new, 0 updated, 3 unchanged" in second.output
    assert (out / "feed.xml").read_bytes() == feed_bytes
    again = (out / "feed.xml").stat()
    assert (again.st_ino, again.st_mtime_ns) == (feed_stat.st_ino, feed_stat.st_mtime_ns)

    # one page changes: same guid, new audio under a new name, exact numbers again
    room.stories[0] = room.stories[0].edited("书房还将每月举办一次读书分享会。")
    room.publish()
    third = run_feed(source, out, cache=segment_cache)
    assert third.exit_code == 0, third.output
    assert "0 new, 1 updated, 2 unchanged" in third.output
    _, after = read_our_feed(out)
    assert {i.title: i.guid for i in after} == guids
    edited = next(i for i in after if i.title == STORIES[0].title)
    assert edited.audio != library.audio and edited.length != library.length
    assert exact_ms(edited) > exact_ms(library)
    assert "读书分享会" in edited.transcript.read_text(encoding="utf-8")
    # the description says the audio changed (apps keep a downloaded episode by its guid)
    assert edited.entry.summary.startswith("（本集音频已于")
    assert edited.entry.summary.endswith(STORIES[0].summary)
    unchanged = [(i.audio, i.length) for i in after if i.title != STORIES[0].title]
    assert unchanged == [(i.audio, i.length) for i in items if i.title != STORIES[0].title]
    check_files(after)
    # the replaced audio stays published for the grace period (a day by default): apps that
    # fetched the previous feed.xml still point at it
    replaced = {library.audio.name, library.transcript.name, library.chapters.name}
    assert library.audio.stat().st_size == library.length
    assert episode_files(out) == named_files(after) | replaced
    assert run_feed(source, out, cache=segment_cache).exit_code == 0
    assert episode_files(out) == named_files(after) | replaced
    # a run after the grace period deletes it, and only it
    expired = run_feed(source, out, "--grace", "0", cache=segment_cache)
    assert expired.exit_code == 0, expired.output
    assert episode_files(out) == named_files(after)
    assert read_our_feed(out)[1] == after

    # a new entry: one more episode, the others untouched
    room.stories.append(STORIES[3])
    room.publish()
    fourth = run_feed(source, out, cache=segment_cache)
    assert fourth.exit_code == 0, fourth.output
    assert "1 new, 0 updated, 3 unchanged" in fourth.output
    _, latest = read_our_feed(out)
    assert latest[0].title == STORIES[3].title
    assert {i.title: i.guid for i in latest[1:]} == guids
    check_files(latest[:1])


def test_only_new_and_changed_entries_are_synthesized(
    web: LocalWeb, tmp_path: Path, edge_standin: EdgeStandin, segment_cache: Path
) -> None:
    room = Newsroom(web)
    source = room.publish()
    out = tmp_path / "podcast"
    settings = Settings(engine="edge", use_cache=False)

    def spoken(story_url: str) -> list[str]:
        article = pipeline.load_article(story_url, settings)
        return [seg.text for seg in pipeline.make_script(article, settings).segments]

    first = run_feed(source, out, "--no-cache", engine="edge", cache=segment_cache)
    assert first.exit_code == 0, first.output
    expected = sorted(text for story in room.stories for text in spoken(room.url(story)))
    assert sorted(r.text for r in edge_standin.requests) == expected
    _, items = read_our_feed(out)
    check_files(items)

    done = len(edge_standin.requests)
    again = run_feed(source, out, "--no-cache", engine="edge", cache=segment_cache)
    assert again.exit_code == 0, again.output
    assert len(edge_standin.requests) == done  # nothing changed: no synthesis at all

    room.stories[1] = room.stories[1].edited("夜间公交还将增加两条新线路。")
    room.stories.append(STORIES[4])
    room.publish()
    third = run_feed(source, out, "--no-cache", engine="edge", cache=segment_cache)
    assert third.exit_code == 0, third.output
    assert "1 new, 1 updated, 2 unchanged" in third.output
    changed = spoken(room.url(room.stories[1])) + spoken(room.url(STORIES[4]))
    assert sorted(r.text for r in edge_standin.requests[done:]) == sorted(changed)
    _, after = read_our_feed(out)
    check_files(after)


def test_a_gb2312_feed_with_full_text_needs_no_page(
    web: LocalWeb, tmp_path: Path, segment_cache: Path
) -> None:
    room = Newsroom(web, full_content=True, encoding="gb2312", content_type="text/xml")
    source = room.publish()
    out = tmp_path / "podcast"
    result = run_feed(
        source, out, "--title", "本地新闻朗读", "--author", "本地新闻网", cache=segment_cache
    )
    assert result.exit_code == 0, result.output
    assert all(not path.startswith("/news/") for path in web.requests)  # no page was fetched
    parsed, items = read_our_feed(out)
    assert parsed.feed.title == "本地新闻朗读"
    assert parsed.feed.author == "本地新闻网"
    assert sorted(i.title for i in items) == sorted(s.title for s in room.stories)
    check_files(items)
    for item in items:
        story = next(s for s in room.stories if s.title == item.title)
        first_sentence = story.paragraphs[0].split("。")[0] + "。"
        assert first_sentence in item.transcript.read_text(encoding="utf-8")


def test_digest_one_episode_one_chapter_per_article(
    web: LocalWeb, tmp_path: Path, segment_cache: Path
) -> None:
    room = Newsroom(web)
    source = room.publish()
    out = tmp_path / "podcast"
    result = run_feed(source, out, "--digest", cache=segment_cache)
    assert result.exit_code == 0, result.output
    _, items = read_our_feed(out)
    (digest,) = items
    check_files(items)

    # chapters: the introduction, then each article in the feed's order (newest first)
    in_feed_order = sorted(room.stories, key=lambda s: s.published, reverse=True)
    chapters = json.loads(digest.chapters.read_text(encoding="utf-8"))["chapters"]
    assert [c["title"] for c in chapters] == ["导语"] + [s.title for s in in_feed_order]
    tag = ID3(digest.audio)
    chaps = sorted(tag.getall("CHAP"), key=lambda c: c.start_time)
    assert [(c.start_time, str(c.sub_frames["TIT2"])) for c in chaps] == [
        (round(c["startTime"] * 1000), c["title"]) for c in chapters
    ]

    # the introduction names every headline
    vtt = digest.transcript.read_text(encoding="utf-8")
    cues = _cues(vtt)
    intro = " ".join(text for start, text in cues if start < chapters[1]["startTime"])
    for story in in_feed_order:
        assert story.title in intro

    # each article chapter starts exactly where its article starts: the headline is the first
    # cue at or after the mark, and the second before the mark is silence
    samples = decode_samples(digest.audio)
    for chapter, story in zip(chapters[1:], in_feed_order, strict=True):
        start = chapter["startTime"]
        first_cue = next(text for cue_start, text in cues if cue_start >= start - 0.001)
        assert first_cue == story.title
        assert not any(start - 0.001 < cue_start < start for cue_start, _ in cues)
        before = samples[int((start - 1.0) * SAMPLE_RATE) : int((start - 0.05) * SAMPLE_RATE)]
        assert _rms(before) < 30, chapter["title"]
        after = samples[int(start * SAMPLE_RATE) : int((start + 2.0) * SAMPLE_RATE)]
        assert _rms(after) > 300, chapter["title"]
        assert chapter["endTime"] > start
    assert round(chapters[-1]["endTime"] * 1000) == len(samples) * 1000 // SAMPLE_RATE

    # the next run's digest holds only what is new; nothing new, no digest
    room.stories.append(STORIES[3])
    room.publish()
    second = run_feed(source, out, "--digest", cache=segment_cache)
    assert second.exit_code == 0, second.output
    _, both = read_our_feed(out)
    assert len(both) == 2
    assert (both[1].guid, both[1].length) == (digest.guid, digest.length)
    newest = json.loads(both[0].chapters.read_text(encoding="utf-8"))["chapters"]
    assert [c["title"] for c in newest] == ["导语", STORIES[3].title]
    check_files(both[:1])
    third = run_feed(source, out, "--digest", cache=segment_cache)
    assert third.exit_code == 0, third.output
    assert len(read_our_feed(out)[1]) == 2

    # a folder made with --digest refuses a per-article run
    mixed = run_feed(source, out, cache=segment_cache)
    assert mixed.exit_code == 2 and "--digest" in mixed.output


def test_a_failing_page_is_retried_next_run_and_the_others_proceed(
    web: LocalWeb, tmp_path: Path, segment_cache: Path
) -> None:
    room = Newsroom(web)
    source = room.publish()
    broken = room.stories[1]
    web.routes[broken.path] = Route(b"busy", 503, {"Content-Type": "text/plain"})
    out = tmp_path / "podcast"

    first = run_feed(source, out, cache=segment_cache)
    assert first.exit_code == 3, first.output
    assert f"failed {broken.title}: HTTP 503" in first.output
    assert "tried again on the next run" in first.output
    _, items = read_our_feed(out)
    assert sorted(i.title for i in items) == sorted(
        s.title for s in room.stories if s is not broken
    )
    check_files(items, decode=False)

    room.publish()  # the page is back
    second = run_feed(source, out, cache=segment_cache)
    assert second.exit_code == 0, second.output
    assert "1 new, 0 updated, 2 unchanged" in second.output
    _, after = read_our_feed(out)
    assert sorted(i.title for i in after) == sorted(s.title for s in room.stories)
    assert len({i.guid for i in after}) == 3
    assert {i.guid for i in items} < {i.guid for i in after}
    check_files(after)


def test_a_malformed_feed_with_duplicates_gives_what_is_usable(
    web: LocalWeb, tmp_path: Path, segment_cache: Path
) -> None:
    room = Newsroom(web)
    room.publish()
    document = rss(room.stories, web.base).decode()
    first_item = document[document.index("<item>") : document.index("</item>") + 7]
    retitled = first_item.replace(room.stories[-1].title, "同一条目又出现一次")
    broken = (
        document.replace("</channel></rss>", "")  # the document stops short
        .replace("</item>", "</item>" + retitled, 1)  # the first entry's guid again
        .replace("本地新闻网的最新报道", "本地新闻 & 报道")  # a bare ampersand
        + "<item><title>没有链接也没有正文</title><description>只有摘要</description></item>"
    )
    web.routes["/broken.xml"] = Route(broken.encode(), headers={"Content-Type": "text/xml"})
    out = tmp_path / "podcast"
    result = run_feed(web.url("/broken.xml"), out, cache=segment_cache)
    assert result.exit_code == 0, result.output
    assert "is not well-formed XML" in result.output
    assert "appears 2 times in the feed: kept the first" in result.output
    assert "skipped 没有链接也没有正文: no id, no link and no text" in result.output
    _, items = read_our_feed(out)
    assert sorted(i.title for i in items) == sorted(s.title for s in room.stories)
    assert "同一条目又出现一次" not in {i.title for i in items}
    check_files(items, decode=False)


def test_keep_keeps_the_newest_episodes_and_deletes_the_rest(
    web: LocalWeb, tmp_path: Path, segment_cache: Path
) -> None:
    room = Newsroom(web, stories=list(STORIES[:4]))
    source = room.publish()
    out = tmp_path / "podcast"

    first = run_feed(source, out, "--keep", "2", cache=segment_cache)
    assert first.exit_code == 0, first.output
    assert "2 new" in first.output and "(--keep)" in first.output  # the older two not even made
    _, items = read_our_feed(out)
    assert [i.title for i in items] == [STORIES[3].title, STORIES[2].title]
    assert episode_files(out) == named_files(items)

    room.stories.append(STORIES[4])
    room.publish()
    second = run_feed(source, out, "--keep", "2", cache=segment_cache)
    assert second.exit_code == 0, second.output
    assert f"removed {STORIES[2].title} (--keep)" in second.output
    _, after = read_our_feed(out)
    assert [i.title for i in after] == [STORIES[4].title, STORIES[3].title]
    # the removed episode's files stay for the grace period, then go
    removed = episode_files(out) - named_files(after)
    assert len(removed) == 3 and all(name.startswith("2024-07-02-") for name in removed)
    check_files(after, decode=False)

    # a removed article is not made again, even without --keep
    third = run_feed(source, out, "--grace", "0s", cache=segment_cache)
    assert third.exit_code == 0, third.output
    _, latest = read_our_feed(out)
    titles = [i.title for i in latest]
    assert STORIES[2].title not in titles
    assert titles[:2] == [STORIES[4].title, STORIES[3].title]
    assert episode_files(out) == named_files(latest)  # the removed episode's files are gone


def test_a_lost_file_is_made_again_and_a_second_run_waits_its_turn(
    web: LocalWeb, tmp_path: Path, segment_cache: Path
) -> None:
    room = Newsroom(web)
    source = room.publish()
    out = tmp_path / "podcast"
    assert run_feed(source, out, cache=segment_cache).exit_code == 0
    _, items = read_our_feed(out)
    lost = items[1]
    lost.audio.unlink()  # someone cleaned up the folder by hand
    (out / "episodes" / "stray.mp3").write_bytes(b"not ours")

    result = run_feed(source, out, cache=segment_cache)
    assert result.exit_code == 0, result.output
    assert f"repaired: the files of {lost.title!r} were missing" in result.output
    assert "1 new, 0 updated, 2 unchanged" in result.output
    _, after = read_our_feed(out)
    assert [(i.guid, i.audio, i.length) for i in after] == [
        (i.guid, i.audio, i.length) for i in items
    ]
    assert episode_files(out) == named_files(after)
    check_files(after, decode=False)

    with (tmp_path / "podcast.newsreader-state" / "feed.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)  # another run holds the folder
        busy = run_feed(source, out, cache=segment_cache)
    assert busy.exit_code == 6
    assert "another `newsreader feed` run is updating" in busy.output


def test_since_and_limit(web: LocalWeb, tmp_path: Path, segment_cache: Path) -> None:
    room = Newsroom(web, stories=list(STORIES))
    source = room.publish()
    out = tmp_path / "podcast"
    result = run_feed(source, out, "--since", "2024-07-02", "--limit", "2", cache=segment_cache)
    assert result.exit_code == 0, result.output
    _, items = read_our_feed(out)
    assert [i.title for i in items] == [STORIES[4].title, STORIES[3].title]
    bad = run_feed(source, out, "--since", "last tuesday", cache=segment_cache)
    assert bad.exit_code == 2 and "--since" in bad.output


def test_bad_sources_fail_cleanly_and_leave_the_feed_alone(
    web: LocalWeb, tmp_path: Path, segment_cache: Path
) -> None:
    room = Newsroom(web)
    source = room.publish()
    out = tmp_path / "podcast"
    assert run_feed(source, out, cache=segment_cache).exit_code == 0
    feed_bytes = (out / "feed.xml").read_bytes()

    web.routes["/missing.xml"] = Route(b"no", 404, {"Content-Type": "text/plain"})
    web.page("/page.html", "<html><body><p>一个网页，不是订阅源。</p></body></html>")
    cases = {
        web.url("/missing.xml"): "HTTP 404",
        web.url("/page.html"): "not an RSS or Atom feed",
        "ftp://example.cn/rss.xml": "unsupported URL scheme",
        str(tmp_path / "nowhere.xml"): "no such file",
    }
    for bad, message in cases.items():
        result = run_feed(bad, out, cache=segment_cache)
        assert result.exit_code == 3, result.output
        assert message in result.output
        assert "Traceback" not in result.output
    assert (out / "feed.xml").read_bytes() == feed_bytes

    wrong = run_feed(source, out, "--base-url", "pod.example.cn/news", cache=segment_cache)
    assert wrong.exit_code == 2 and "--base-url" in wrong.output
    assert BASE_URL in feed_bytes.decode()


def _cues(vtt: str) -> list[tuple[float, str]]:
    cues = []
    for block in vtt.split("\n\n")[1:]:
        lines = block.strip().splitlines()
        if len(lines) < 2 or "-->" not in lines[0]:
            continue
        h, m, s = lines[0].split(" --> ")[0].split(":")
        cues.append((int(h) * 3600 + int(m) * 60 + float(s), "".join(lines[1:])))
    return cues


def _rms(samples: list[int]) -> float:
    return math.sqrt(sum(s * s for s in samples) / len(samples)) if samples else 0.0
