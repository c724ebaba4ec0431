"""The one cache folder rule, and that the sandbox and the report renderer both follow it."""

from __future__ import annotations

from pathlib import Path

import pytest

from kbp_notebook import _cache, report, sandbox
from kbp_notebook.sandbox import _jars


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    monkeypatch.delenv("KBP_CACHE_DIR", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    return monkeypatch


def test_default_is_dot_cache_under_home(clean_env, tmp_path):
    path = _cache.cache_dir()
    assert path == tmp_path / "home" / ".cache" / "kbp_notebook"
    assert path.is_dir()


def test_xdg_cache_home_is_followed(clean_env, tmp_path):
    clean_env.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert _cache.cache_dir() == tmp_path / "xdg" / "kbp_notebook"


def test_kbp_cache_dir_overrides_everything_and_expands_the_home(clean_env, tmp_path):
    clean_env.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    clean_env.setenv("KBP_CACHE_DIR", "~/mine")
    assert _cache.cache_dir() == Path(tmp_path / "home" / "mine")
    assert (tmp_path / "home" / "mine").is_dir()


def test_every_caller_uses_the_one_rule():
    assert sandbox.cache_dir is _cache.cache_dir
    assert _jars.cache_dir is _cache.cache_dir  # what fetch_jars uses
    assert report.cache_dir is _cache.cache_dir
