"""``newsreader serve`` without ``--redis`` or ``--storage s3://`` loads no cluster library."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

CLUSTER_LIBRARIES = ("redis", "saq", "boto3", "botocore")


def test_the_embedded_service_loads_no_cluster_library(tmp_path: Path) -> None:
    probe = f"""
import asyncio, json, sys
from pathlib import Path
from newsreader.service.app import create_app
from newsreader.service.config import ServiceConfig
from newsreader.service import fairness, files, ports, readings, request, runner, status

app = create_app(ServiceConfig(data_dir=Path({str(tmp_path / "data")!r}), engine="espeak"))

async def main() -> None:
    async with app.router.lifespan_context(app):
        pass

asyncio.run(main())
print(json.dumps(sorted(sys.modules)))
"""
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    modules = set(json.loads(done.stdout.splitlines()[-1]))
    assert "newsreader.service.readings" in modules  # the embedded backend did start
    assert [name for name in CLUSTER_LIBRARIES if name in modules] == []
