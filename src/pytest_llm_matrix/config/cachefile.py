"""pytest's cache (``.pytest_cache/v/<key>``), read and written so that whatever sits at a
key's path cannot stall or turn a run: values are read with :func:`.jsonfile.read_json` (a
FIFO or a device there is not waited on, a huge file not read; pytest's own ``cache.get``
would block on the one and read the other whole), and nothing is written through a path
that is not a regular file (a FIFO would block the write; a symlink would send it
elsewhere).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Final

import pytest

from pytest_llm_matrix.config.jsonfile import JSONFileError, read_json, writable

#: The plugin's largest cached value is a duration or a cost per test id: some MB for a
#: suite of 100,000 tests.
MAX_BYTES: Final = 64 * 2**20


def value_path(config: pytest.Config, key: str) -> Path:
    """Where pytest's cache keeps ``key`` (as ``config.cache`` would; also before it exists)."""
    cache_dir = os.path.expanduser(os.path.expandvars(str(config.getini("cache_dir"))))
    return config.rootpath / cache_dir / "v" / key


def get(config: pytest.Config, key: str, default: object) -> object:
    """The cached value of ``key``; ``default`` without pytest's cache plugin
    (``-p no:cacheprovider``) or when the value cannot be read."""
    if not config.pluginmanager.has_plugin("cacheprovider"):
        return default
    try:
        path = value_path(config, key)
        return read_json(path, what="the cached value", max_bytes=MAX_BYTES, constants=True)
    except (OSError, JSONFileError):
        return default


def put(config: pytest.Config, key: str, value: object) -> None:
    """Cache ``value`` for ``key`` (nothing without the cache plugin, or when the key's path
    is taken by something other than a regular file)."""
    cache = getattr(config, "cache", None)
    if cache is None:
        return
    try:
        mode = os.lstat(value_path(config, key)).st_mode
    except FileNotFoundError:
        pass
    except OSError:
        return
    else:
        if not stat.S_ISREG(mode):
            return
    cache.set(key, writable(value))  # a test id may hold a lone surrogate: UTF-8 cannot
