"""What the podcast says about itself: episode ID3 tags, cover art, owner, lock, digest titles,
and the source feed's size cap. Real ``newsreader feed`` runs against the local newsroom."""

from __future__ import annotations

import struct
from pathlib import Path

from lxml import etree
from mutagen.id3 import ID3, PictureType

from newsreader.podcast.cover import cover_png
from tests.podcast.helpers import BASE_URL, ITUNES, PODCAST, read_our_feed, run_feed
from tests.podcast.newsroom import BEIJING, STORIES, Newsroom
from tests.webserver import LocalWeb


def channel(out: Path) -> etree._Element:
    root = etree.fromstring((out / "feed.xml").read_bytes())
    element = root.find("channel")
    assert element is not None
    return element


def test_episode_tags_name_the_podcast_and_the_entry_date_and_embed_the_cover(
    web: LocalWeb, tmp_path: Path, segment_cache: Path
) -> None:
    # full text in the feed: the page (and its dateline) is never read, so the date can only
    # come from the entry's pubDate
    room = Newsroom(web, full_content=True)
    source = room.publish()
    out = tmp_path / "podcast"
    result = run_feed(
        source, out, "--title", "本地新闻朗读", "--author", "本地台", cache=segment_cache
    )
    assert result.exit_code == 0, result.output
    assert all(not path.startswith("/news/") for path in web.requests)
    _, items = read_our_feed(out)
    cover = (out / "cover.png").read_bytes()
    for item in items:
        story = next(s for s in room.stories if s.title == item.title)
        tag = ID3(item.audio)
        assert tag["TIT2"].text == [story.title]
        assert tag["TPE1"].text == ["本地台"]  # the podcast, not the article's host name
        assert tag["TALB"].text == ["本地新闻朗读"]
        assert tag["TCON"].text == ["Podcast"]
        wall = story.published.astimezone(BEIJING).strftime("%Y-%m-%d %H:%M:00")
        assert str(tag["TDRC"].text[0]) == wall  # TYER + TDAT + TIME, Beijing wall clock
        (picture,) = tag.getall("APIC")
        assert (picture.mime, picture.type) == ("image/png", PictureType.COVER_FRONT)
        assert picture.data == cover


def _jpeg(size: int) -> bytes:
    """A minimal baseline JPEG header (SOI, SOF0 with the size, EOI): enough to be told apart."""
    sof = b"\xff\xc0" + struct.pack(">HBHHB", 11, 8, size, size, 1) + b"\x01\x11\x00"
    return b"\xff\xd8" + sof + b"\xff\xd9"


def test_a_cover_file_is_published_and_embedded_a_cover_url_is_only_linked(
    web: LocalWeb, tmp_path: Path, segment_cache: Path
) -> None:
    source = Newsroom(web, stories=list(STORIES[:1])).publish()
    art = tmp_path / "art.jpg"
    art.write_bytes(_jpeg(1400))
    out = tmp_path / "podcast"
    result = run_feed(source, out, "--image", str(art), cache=segment_cache)
    assert result.exit_code == 0, result.output
    assert (out / "cover.jpg").read_bytes() == art.read_bytes()
    assert not (out / "cover.png").exists()
    assert channel(out).find(f"{ITUNES}image").get("href") == BASE_URL + "cover.jpg"
    _, (item,) = read_our_feed(out)
    (picture,) = ID3(item.audio).getall("APIC")
    assert (picture.mime, picture.data) == ("image/jpeg", art.read_bytes())

    # a remote image is linked from the feed, not fetched: nothing to embed
    remote = tmp_path / "remote"
    url = "https://img.example.cn/cover.png"
    linked = run_feed(source, remote, "--image", url, cache=segment_cache)
    assert linked.exit_code == 0, linked.output
    assert channel(remote).find(f"{ITUNES}image").get("href") == url
    _, (item,) = read_our_feed(remote)
    assert ID3(item.audio).getall("APIC") == []

    # what is not a PNG or JPEG file is refused before anything is made
    gif = tmp_path / "art.gif"
    gif.write_bytes(b"GIF89a" + bytes(100))
    cases = {
        str(gif): "is not a PNG or JPEG image",
        str(tmp_path / "missing.png"): "no such file",
        str(tmp_path): "is not a file",
    }
    for image, message in cases.items():
        refused = run_feed(source, tmp_path / "refused", "--image", image, cache=segment_cache)
        assert refused.exit_code == 2, refused.output
        assert message in refused.output and "Traceback" not in refused.output
    big = tmp_path / "big.png"
    big.write_bytes(cover_png()[:8] + bytes(3_000_000))
    refused = run_feed(source, tmp_path / "refused", "--image", str(big), cache=segment_cache)
    assert refused.exit_code == 2 and "embedded in every episode" in refused.output
    assert not (tmp_path / "refused").exists()


def test_owner_and_lock(web: LocalWeb, tmp_path: Path, segment_cache: Path) -> None:
    source = Newsroom(web, stories=list(STORIES[:1])).publish()
    out = tmp_path / "podcast"
    plain = run_feed(source, out, cache=segment_cache)
    assert plain.exit_code == 0, plain.output
    assert channel(out).find(f"{ITUNES}owner") is None
    locked = channel(out).find(f"{PODCAST}locked")
    assert (locked.text, locked.get("owner")) == ("no", None)

    owned = run_feed(
        source, out, "--author", "本地台", "--owner-email", "pod@example.cn", cache=segment_cache
    )
    assert owned.exit_code == 0, owned.output
    owner = channel(out).find(f"{ITUNES}owner")
    assert owner.findtext(f"{ITUNES}name") == "本地台"
    assert owner.findtext(f"{ITUNES}email") == "pod@example.cn"
    locked = channel(out).find(f"{PODCAST}locked")
    assert (locked.text, locked.get("owner")) == ("no", "pod@example.cn")

    lock = run_feed(source, out, "--owner-email", "pod@example.cn", "--locked", cache=segment_cache)
    assert lock.exit_code == 0, lock.output
    assert channel(out).find(f"{PODCAST}locked").text == "yes"

    for args, message in (
        (["--locked"], "--locked needs --owner-email"),
        (["--owner-email", "pod.example.cn"], "is not an e-mail address"),
        (["--grace", "soon"], "--grace 'soon' is not a duration"),
        (["--grace", "-1d"], "is not a duration"),
    ):
        refused = run_feed(source, out, *args, cache=segment_cache)
        assert refused.exit_code == 2, refused.output
        assert message in refused.output and "Traceback" not in refused.output


def test_two_digests_on_one_day_have_different_titles(
    web: LocalWeb, tmp_path: Path, segment_cache: Path
) -> None:
    room = Newsroom(web, stories=list(STORIES[:1]))
    source = room.publish()
    out = tmp_path / "podcast"
    assert run_feed(source, out, "--digest", cache=segment_cache).exit_code == 0
    room.stories.append(STORIES[1])
    room.publish()
    assert run_feed(source, out, "--digest", cache=segment_cache).exit_code == 0
    room.stories.append(STORIES[2])
    room.publish()
    assert run_feed(source, out, "--digest", cache=segment_cache).exit_code == 0
    _, items = read_our_feed(out)
    titles = [item.title for item in items]
    assert len(titles) == 3 and len(set(titles)) == 3, titles
    # the same day (barring a run across midnight): numbered, in the order they were made
    first = titles[-1]
    if all(title.startswith(first) for title in titles):
        assert titles[:2] == [f"{first}（第3期）", f"{first}（第2期）"]
    assert [str(ID3(item.audio)["TIT2"]) for item in items] == titles


def test_a_feed_over_the_size_cap_says_feed_and_the_cap_is_an_option(
    web: LocalWeb, tmp_path: Path, segment_cache: Path
) -> None:
    room = Newsroom(web, stories=list(STORIES[:1]))
    source = room.publish()
    size = len(web.routes["/rss.xml"].body)
    file = tmp_path / "rss.xml"
    file.write_bytes(web.routes["/rss.xml"].body)
    out = tmp_path / "podcast"
    for feed in (source, str(file)):
        result = run_feed(feed, out, "--max-feed-bytes", str(size - 1), cache=segment_cache)
        assert result.exit_code == 3, result.output
        assert "-byte limit for a feed (raise it with --max-feed-bytes)" in result.output
        assert "one article" not in result.output
    assert not (out / "feed.xml").exists()
    fits = run_feed(source, out, "--max-feed-bytes", str(size), cache=segment_cache)
    assert fits.exit_code == 0, fits.output
