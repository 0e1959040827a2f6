"""The set-up script's apt handling, against a stand-in apt-get that holds its lock for a while."""

from __future__ import annotations

import stat
import sys
from pathlib import Path

import pytest
import tasks


def fake_apt(tmp_path: Path, *, busy_runs: int) -> Path:
    """An executable failing as apt-get does under a held lock ``busy_runs`` times, then working."""
    counter = tmp_path / "runs"
    script = tmp_path / "apt-get"
    script.write_text(
        f"#!{sys.executable}\n"
        "import sys\n"
        "from pathlib import Path\n"
        f"counter = Path({str(counter)!r})\n"
        "runs = int(counter.read_text()) if counter.exists() else 0\n"
        "counter.write_text(str(runs + 1))\n"
        f"if runs < {busy_runs}:\n"
        "    print('E: Could not get lock /var/lib/dpkg/lock-frontend. It is held by process 7',"
        " file=sys.stderr)\n"
        "    sys.exit(100)\n"
        "print('installed', ' '.join(sys.argv[1:]))\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


def runs(tmp_path: Path) -> int:
    return int((tmp_path / "runs").read_text())


def test_apt_waits_for_another_process_to_release_its_lock(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    script = fake_apt(tmp_path, busy_runs=2)
    tasks.apt_get("install", "-y", "chromium", command=[str(script)], wait=30, poll=0.01)
    assert runs(tmp_path) == 3
    out = capsys.readouterr().out
    assert "installed -o DPkg::Lock::Timeout=30 install -y chromium" in out
    assert out.count("apt is busy") == 2


def test_apt_gives_up_after_its_bound_with_one_clear_line(tmp_path: Path) -> None:
    script = fake_apt(tmp_path, busy_runs=10_000)
    with pytest.raises(SystemExit) as stopped:
        tasks.apt_get("update", command=[str(script)], wait=0.2, poll=0.05)
    assert "another apt process kept its lock" in str(stopped.value)
    assert 2 <= runs(tmp_path) < 100


def test_a_failure_that_is_not_the_lock_is_not_retried(tmp_path: Path) -> None:
    script = tmp_path / "apt-get"
    script.write_text(f"#!{sys.executable}\nimport sys\nsys.exit('E: Unable to locate package')\n")
    script.chmod(0o755)
    with pytest.raises(SystemExit) as stopped:
        tasks.apt_get("install", "-y", "nothing", command=[str(script)], wait=30, poll=5)
    assert "exit code 1" in str(stopped.value)
    assert "lock" not in str(stopped.value)


def test_the_cjk_font_is_installed_even_when_chromium_is_there(tmp_path: Path) -> None:
    browser = tmp_path / "chromium"
    browser.touch()
    wanted = {"chromium": browser, "fonts-wqy-microhei": tmp_path / "absent.ttc"}
    assert tasks.missing_packages(wanted) == ["fonts-wqy-microhei"]
    assert "fonts-wqy-microhei" in tasks.BROWSER_PACKAGES
