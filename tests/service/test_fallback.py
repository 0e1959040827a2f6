"""The service runs the pipeline's streaming render, so it gets ``--fallback espeak`` too."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from newsreader.cli import main
from newsreader.text.extract import extract
from newsreader.text.segment import build_script
from tests.service.conftest import ARTICLE, in_process, make_config, wait_for
from tests.standin.server import EdgeStandin
from tests.standin.verify import frame_runs, strip_id3v2


def test_edge_failing_partway_is_read_again_by_the_embedded_voice_with_a_warning(
    tmp_path: Path, edge_standin: EdgeStandin
) -> None:
    script = build_script(extract(ARTICLE, read_whole=True), locale="zh-CN", read_title=True)
    failing = {segment.text for segment in script.segments if segment.block == 1}
    assert failing
    edge_standin.set_faults(chooser=lambda _n, text: "close_mid_audio" if text in failing else None)

    async def scenario() -> None:
        config = make_config(tmp_path / "data", fallback="espeak")
        async with in_process(config) as (_app, client):
            posted = await client.post("/api/readings", json={"text": ARTICLE})
            assert posted.status_code == 202, posted.text
            reading = await wait_for(client, posted.json()["id"])
            assert reading["status"] == "done", reading
            assert reading["engine"] == "espeak"
            [warning] = reading["warnings"]
            assert warning.startswith("the online voice failed for 1 of 4 segments")
            assert "--fallback espeak" in warning
            # every sentence timed, in the embedded voice's reading
            sentences = reading["sentences"]
            assert all(s["start"] is not None for s in sentences)
            assert sentences[-1]["end"] <= reading["duration"]
            audio = await client.get(reading["links"]["audio"])
            # not one frame of the online voice's audio: the whole article was read again
            runs = frame_runs(strip_id3v2(audio.content))
            assert [kind for kind, _ in runs].count("tone") == 0
            chapters = await client.get(f"/api/readings/{posted.json()['id']}/chapters.json")
            assert chapters.json()["chapters"][-1]["endTime"] == reading["duration"]

    asyncio.run(scenario())
    assert len(edge_standin.requests) >= 4  # the online voice was tried first


def test_without_fallback_the_reading_fails_naming_the_paragraph(
    tmp_path: Path, edge_standin: EdgeStandin
) -> None:
    script = build_script(extract(ARTICLE, read_whole=True), locale="zh-CN", read_title=True)
    failing = {segment.text for segment in script.segments if segment.block == 1}
    edge_standin.set_faults(chooser=lambda _n, text: "close_mid_audio" if text in failing else None)

    async def scenario() -> dict[str, Any]:
        async with in_process(make_config(tmp_path / "data")) as (_app, client):
            posted = await client.post("/api/readings", json={"text": ARTICLE})
            reading = await wait_for(client, posted.json()["id"])
            stream = await client.get(f"/api/readings/{posted.json()['id']}/stream.mp3")
            assert stream.status_code == 409
            return reading

    reading = asyncio.run(scenario())
    assert reading["status"] == "failed"
    assert reading["error"]["code"] == "synthesis_failed"
    assert "paragraph 2" in reading["error"]["message"]
    assert reading["warnings"] == []


def test_serve_refuses_a_fallback_that_is_its_engine() -> None:
    result = CliRunner().invoke(
        main, ["serve", "--engine", "espeak", "--fallback", "espeak", "--data", "x"]
    )
    assert result.exit_code == 2
    assert "--fallback espeak is for --engine auto or edge" in result.output
