"""The package's public surface: everything in __all__ exists, and every public name is listed."""

from __future__ import annotations

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
