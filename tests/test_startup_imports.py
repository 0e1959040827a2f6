"""Start-up stays light, and a tagged MP3 is written in chunks without a joined copy."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from newsreader.audio.atomic import atomic_write
from newsreader.errors import OutputError

HEAVY = (
    "cn2an", "trafilatura", "lxml", "httpx", "charset_normalizer", "fastapi", "uvicorn",
    "starlette", "feedgen", "feedparser", "edge_tts", "lameenc", "numpy", "scipy", "jieba",
    "selectolax", "boto3", "botocore", "redis", "saq", "prometheus_client",
)  # fmt: skip


def _loaded_after(code: str) -> list[str]:
    probe = f"import sys\n{code}\nimport json; print(json.dumps(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    modules = set(json.loads(done.stdout.splitlines()[-1]))
    return [name for name in HEAVY if name in modules]


def test_the_cli_imports_no_heavy_dependency() -> None:
    assert _loaded_after("import newsreader.cli") == []


def test_plain_text_without_numbers_needs_no_heavy_dependency() -> None:
    code = (
        "from newsreader.config import Settings\n"
        "from newsreader.text.extract import extract\n"
        "from newsreader.text.segment import build_script\n"
        "article = extract('城市书房开到家门口\\n\\n社区居民在书房里读书，孩子们也来了。')\n"
        "build_script(article, locale=Settings().locale, read_title=True)"
    )
    assert _loaded_after(code) == []


def test_text_with_numbers_needs_no_heavy_dependency() -> None:
    # Quantities are spelled by our own code: cn2an (0.15-0.25 s to import) is for tests only.
    code = (
        "from newsreader.config import Settings\n"
        "from newsreader.text.extract import extract\n"
        "from newsreader.text.segment import build_script\n"
        "article = extract('第1部分第3段\\n\\n全市新建20个城市书房，共有1,234.5万册书。')\n"
        "script = build_script(article, locale=Settings().locale, read_title=True)\n"
        "spoken = [segment.text for segment in script.segments]\n"
        "assert spoken[-1] == '全市新建二十个城市书房，共有一千二百三十四点五万册书。', spoken\n"
    )
    assert _loaded_after(code) == []


def test_atomic_write_writes_chunks_in_order(tmp_path: Path) -> None:
    path = tmp_path / "a.mp3"
    atomic_write(path, (b"ID3", memoryview(b"frames"), bytearray(b"!")))
    assert path.read_bytes() == b"ID3frames!"
    assert [p.name for p in tmp_path.iterdir()] == ["a.mp3"]


def test_atomic_write_failing_chunks_leave_the_old_file(tmp_path: Path) -> None:
    path = tmp_path / "a.mp3"
    path.write_bytes(b"old")

    def chunks() -> Iterator[bytes]:
        yield b"new"
        raise OSError(28, "No space left on device")

    with pytest.raises(OutputError, match=r"^cannot write .*a\.mp3: No space left on device\.$"):
        atomic_write(path, chunks())
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.mp3"]
