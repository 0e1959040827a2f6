"""The feed's state lives beside the published folder, never in it; old folders are migrated.

Real ``newsreader feed`` runs against the local newsroom; the state is inspected with sqlite3.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tests.podcast.helpers import check_files, episode_files, named_files, read_our_feed, run_feed
from tests.podcast.newsroom import Newsroom
from tests.webserver import LocalWeb


def published(out: Path) -> set[str]:
    """Every file under the folder that is published, relative to it."""
    return {str(path.relative_to(out)) for path in out.rglob("*") if path.is_file()}


def snapshot(out: Path) -> dict[str, tuple[int, int]]:
    """Each published file's inode and modification time: what a rewrite would change."""
    return {
        name: ((out / name).stat().st_ino, (out / name).stat().st_mtime_ns)
        for name in published(out)
    }


def test_nothing_but_the_feed_is_in_the_published_folder(
    web: LocalWeb, tmp_path: Path, segment_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = Newsroom(web).publish()
    out = tmp_path / "site" / "news"
    result = run_feed(source, out, cache=segment_cache)
    assert result.exit_code == 0, result.output
    _, items = read_our_feed(out)
    # feed.xml, the cover and the episodes: no database, no lock file, nothing hidden
    assert published(out) == {"feed.xml", "cover.png"} | {
        f"episodes/{name}" for name in named_files(items)
    }
    state = tmp_path / "site" / "news.newsreader-state"
    assert sorted(path.name for path in state.iterdir()) == ["feed.lock", "feed.sqlite3"]
    with sqlite3.connect(state / "feed.sqlite3") as db:
        assert db.execute("SELECT count(*) FROM episodes").fetchone() == (3,)

    # --state puts it anywhere outside --out; a relative --out works the same
    elsewhere = tmp_path / "private" / "state"
    monkeypatch.chdir(tmp_path)
    custom = run_feed(source, Path("other"), "--state", str(elsewhere), cache=segment_cache)
    assert custom.exit_code == 0, custom.output
    assert (elsewhere / "feed.sqlite3").is_file()
    assert not (tmp_path / "other.newsreader-state").exists()
    assert not [name for name in published(tmp_path / "other") if "sqlite" in name]


def test_a_state_folder_inside_the_published_folder_is_refused(
    web: LocalWeb, tmp_path: Path, segment_cache: Path
) -> None:
    source = Newsroom(web).publish()
    out = tmp_path / "podcast"
    for inside in (out / "state", out, out / "episodes" / ".." / "x"):
        result = run_feed(source, out, "--state", str(inside), cache=segment_cache)
        assert result.exit_code == 2, result.output
        assert "is inside --out" in result.output and "published" in result.output
        assert "Traceback" not in result.output
    assert not out.exists()  # refused before anything was made


def test_a_feed_made_with_the_state_inside_is_moved_out_and_loses_nothing(
    web: LocalWeb, tmp_path: Path, segment_cache: Path
) -> None:
    room = Newsroom(web)
    source = room.publish()
    out = tmp_path / "podcast"
    state = tmp_path / "podcast.newsreader-state"
    assert run_feed(source, out, cache=segment_cache).exit_code == 0
    _, items = read_our_feed(out)

    # the layout of earlier versions: the state and its lock inside the output folder
    (state / "feed.sqlite3").rename(out / ".newsreader-feed.sqlite3")
    (state / "feed.lock").rename(out / ".newsreader-feed.lock")
    state.rmdir()
    before = snapshot(out)

    result = run_feed(source, out, cache=segment_cache)
    assert result.exit_code == 0, result.output
    assert "newsreader: note: moved the feed state out of the published folder" in result.output
    assert "0 new, 0 updated, 3 unchanged" in result.output  # the history came along
    assert not (out / ".newsreader-feed.sqlite3").exists()
    assert not (out / ".newsreader-feed.lock").exists()
    assert (state / "feed.sqlite3").is_file()
    # every episode, and feed.xml itself, exactly as they were: nothing made again
    assert snapshot(out) == {
        name: stamp for name, stamp in before.items() if not name.startswith(".newsreader")
    }
    assert read_our_feed(out)[1] == items
    check_files(items, decode=False)

    # the next run has nothing to move and says nothing about it
    again = run_feed(source, out, cache=segment_cache)
    assert again.exit_code == 0 and "moved the feed state" not in again.output


def test_an_interrupted_move_is_finished_and_two_unrelated_states_are_refused(
    web: LocalWeb, tmp_path: Path, segment_cache: Path
) -> None:
    source = Newsroom(web).publish()
    out = tmp_path / "podcast"
    state = tmp_path / "podcast.newsreader-state"
    assert run_feed(source, out, cache=segment_cache).exit_code == 0
    (state / "feed.sqlite3").rename(out / ".newsreader-feed.sqlite3")
    assert run_feed(source, out, cache=segment_cache).exit_code == 0  # migrated

    # killed after the copy was in place but before the old file was deleted
    (out / ".newsreader-feed.sqlite3").write_bytes((state / "feed.sqlite3").read_bytes())
    resumed = run_feed(source, out, cache=segment_cache)
    assert resumed.exit_code == 0, resumed.output
    assert "0 new, 0 updated, 3 unchanged" in resumed.output
    assert not (out / ".newsreader-feed.sqlite3").exists()

    # an old state beside a state that was not migrated from it: which one is right is not
    # for newsreader to guess
    other = tmp_path / "other"
    assert run_feed(source, other, cache=segment_cache).exit_code == 0
    (tmp_path / "other.newsreader-state" / "feed.sqlite3").rename(out / ".newsreader-feed.sqlite3")
    with sqlite3.connect(state / "feed.sqlite3") as db:
        db.execute("DELETE FROM meta WHERE key = 'migrated_from'")
    db.close()
    refused = run_feed(source, out, cache=segment_cache)
    assert refused.exit_code == 2, refused.output
    assert "there is a feed state both in" in refused.output
    assert (out / ".newsreader-feed.sqlite3").exists() and (state / "feed.sqlite3").exists()


def test_a_feed_without_its_state_is_not_started_over(
    web: LocalWeb, tmp_path: Path, segment_cache: Path
) -> None:
    # A run pointed at the wrong --state (or a state deleted by hand) would otherwise take every
    # episode in the folder for crash leftovers and delete it.
    source = Newsroom(web).publish()
    out = tmp_path / "podcast"
    assert run_feed(source, out, cache=segment_cache).exit_code == 0
    before = snapshot(out)
    result = run_feed(source, out, "--state", str(tmp_path / "wrong"), cache=segment_cache)
    assert result.exit_code == 2, result.output
    assert "already holds a feed.xml, but its state is not in" in result.output
    assert snapshot(out) == before
    assert len(episode_files(out)) == 9
