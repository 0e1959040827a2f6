"""The package's public surface: everything in __all__ exists, and every public name is listed."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys

import newsreader


def test_all_names_exist() -> None:
    for name in newsreader.__all__:
        assert hasattr(newsreader, name), name


def test_every_public_name_is_listed() -> None:
    public = {
        name
        for name, value in vars(newsreader).items()
        if not name.startswith("_") and not isinstance(value, type(newsreader))
    }
    assert public - {"annotations"} <= set(newsreader.__all__)


def test_every_error_is_a_newsreader_error() -> None:
    for name in newsreader.__all__:
        value = getattr(newsreader, name)
        if isinstance(value, type) and issubclass(value, Exception):
            assert issubclass(value, newsreader.NewsreaderError), name


def test_the_version_has_a_module_of_its_own_that_matches_the_installed_package() -> None:
    # Importing the module that names the User-Agent first, in a fresh interpreter: the version
    # must not depend on the order of statements in newsreader/__init__.py.
    code = (
        "import newsreader.sources.fetch as fetch, newsreader._version as v, newsreader\n"
        "print(v.__version__, newsreader.__version__, fetch.USER_AGENT)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    version, package, agent = done.stdout.split(" ", 2)
    assert version == package == importlib.metadata.version("newsreader")
    assert agent.startswith(f"newsreader/{version} ")
