"""Where datasets are read from: --data-root, $GANKIT_DATA_ROOT, ../shared/data, then a cache."""

from __future__ import annotations

from pathlib import Path

import pytest

from gankit.data import root
from gankit.data.root import ENV_VAR, cache_root, resolve_data_root


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """No env var, a cwd with no sibling shared/, a repo root with no sibling shared/."""
    monkeypatch.delenv(ENV_VAR, raising=False)
    workdir = tmp_path / "nowhere" / "cwd"
    workdir.mkdir(parents=True)
    monkeypatch.chdir(workdir)
    fake_repo = tmp_path / "repo-parent" / "repo"
    fake_repo.mkdir(parents=True)
    monkeypatch.setattr(root, "_REPO_ROOT", fake_repo)
    cache = tmp_path / "xdg-cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    return tmp_path


def test_env_var_name():
    assert ENV_VAR == "GANKIT_DATA_ROOT"


def test_repo_root_is_the_checkout():
    assert (root._REPO_ROOT / "src" / "gankit" / "data" / "root.py").is_file()


def test_explicit_wins_over_everything(isolated, monkeypatch):
    monkeypatch.setenv(ENV_VAR, str(isolated / "from-env"))
    (isolated / "nowhere" / "shared" / "data").mkdir(parents=True)
    explicit = isolated / "explicit"
    assert resolve_data_root(explicit) == explicit
    assert resolve_data_root(str(explicit)) == explicit
    assert isinstance(resolve_data_root(str(explicit)), Path)


def test_explicit_expands_user(isolated, monkeypatch):
    monkeypatch.setenv("HOME", str(isolated / "home"))
    assert resolve_data_root("~/datasets") == isolated / "home" / "datasets"


def test_env_var_wins_over_shared_and_cache(isolated, monkeypatch):
    (isolated / "nowhere" / "shared" / "data").mkdir(parents=True)
    monkeypatch.setenv(ENV_VAR, str(isolated / "from-env"))
    assert resolve_data_root() == isolated / "from-env"
    assert resolve_data_root(None) == isolated / "from-env"


def test_empty_env_var_is_ignored(isolated, monkeypatch):
    monkeypatch.setenv(ENV_VAR, "")
    assert resolve_data_root() == isolated / "xdg-cache" / "gankit" / "data"


def test_shared_data_beside_cwd(isolated):
    shared = isolated / "nowhere" / "shared" / "data"
    shared.mkdir(parents=True)
    assert resolve_data_root().resolve() == shared.resolve()


def test_shared_beside_cwd_must_be_a_folder(isolated):
    (isolated / "nowhere" / "shared").mkdir()
    (isolated / "nowhere" / "shared" / "data").write_text("not a folder")
    assert resolve_data_root() == isolated / "xdg-cache" / "gankit" / "data"


def test_shared_data_beside_repo(isolated):
    shared = isolated / "repo-parent" / "shared" / "data"
    shared.mkdir(parents=True)
    assert resolve_data_root() == shared


def test_cwd_shared_comes_before_repo_shared(isolated):
    beside_cwd = isolated / "nowhere" / "shared" / "data"
    beside_cwd.mkdir(parents=True)
    (isolated / "repo-parent" / "shared" / "data").mkdir(parents=True)
    assert resolve_data_root().resolve() == beside_cwd.resolve()


def test_falls_back_to_xdg_cache(isolated):
    expected = isolated / "xdg-cache" / "gankit" / "data"
    assert cache_root() == expected
    assert resolve_data_root() == expected
    assert not expected.exists()  # resolving never creates folders


def test_cache_without_xdg_is_under_home(isolated, monkeypatch):
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(isolated / "home"))
    assert cache_root() == isolated / "home" / ".cache" / "gankit" / "data"
    assert resolve_data_root() == isolated / "home" / ".cache" / "gankit" / "data"
