"""Settings: environment parsing, key map, defaults."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from pydantic import ValidationError

from service.serving.auth import namespace_for, require_admin
from service.config import Settings
from service.errors import AuthenticationError
from tests.servers import REPO


def test_api_keys_map_to_namespaces(monkeypatch, tmp_path):
    monkeypatch.setenv("REVERIE_API_KEYS", "sk-1:alice, sk-2:bob")
    monkeypatch.setenv("REVERIE_DATA_DIR", str(tmp_path))
    settings = Settings()
    assert settings.key_namespaces == {"sk-1": "alice", "sk-2": "bob"}
    assert not settings.open_access
    assert namespace_for(settings, "Bearer sk-2") == "bob"
    with pytest.raises(AuthenticationError):
        namespace_for(settings, "Bearer sk-3")
    with pytest.raises(AuthenticationError):
        namespace_for(settings, None)


def test_malformed_key_entry_is_refused():
    with pytest.raises(ValueError, match="key:namespace"):
        Settings(api_keys="justakey").key_namespaces


def test_open_access_is_namespace_default(tmp_path):
    settings = Settings(data_dir=tmp_path)
    assert settings.open_access
    assert namespace_for(settings, None) == namespace_for(settings, "Bearer whatever") == "default"
    assert settings.resolved_database_url == f"sqlite:///{tmp_path / 'reverie.db'}"


def test_admin_key_is_required_and_distinct(tmp_path):
    with pytest.raises(AuthenticationError, match="disabled"):
        require_admin(Settings(data_dir=tmp_path), "Bearer x")
    settings = Settings(data_dir=tmp_path, admin_key="adm", api_keys="k:ns")
    require_admin(settings, "Bearer adm")
    with pytest.raises(AuthenticationError):
        require_admin(settings, "Bearer k")


def test_env_file_is_read(tmp_path, monkeypatch):
    (tmp_path / ".env").write_text("REVERIE_MODEL_NAME=memory-model\nREVERIE_PORT=9001\n")
    monkeypatch.chdir(tmp_path)
    settings = Settings()
    assert (settings.model_name, settings.port) == ("memory-model", 9001)


def test_bad_values_are_refused():
    with pytest.raises(ValidationError):
        Settings(engine="tensorrt")
    with pytest.raises(ValidationError):
        Settings(model_name=" ")


def test_readme_lists_every_setting():
    readme = (REPO / "README.md").read_text()
    missing = [name for name in Settings.model_fields if f"`REVERIE_{name.upper()}`" not in readme]
    assert missing == []


@pytest.mark.parametrize("namespace", ["../../etc", "a/b", "a b", ".hidden", "x" * 65, "ns\x00"])
def test_api_keys_with_an_unsafe_namespace_are_refused_at_start(namespace):
    with pytest.raises(ValidationError, match="not a valid namespace") as refused:
        Settings(api_keys=f"sk-secret-value:{namespace}")
    assert "sk-secret-value" not in str(refused.value)  # the keys never reach the log


def test_serve_refuses_a_too_short_admin_key(tmp_path):
    env = {**os.environ, "REVERIE_DATA_DIR": str(tmp_path), "REVERIE_ADMIN_KEY": "adm", "REVERIE_API_KEYS": "k:ns"}
    result = subprocess.run([sys.executable, "-m", "service.cli", "serve"], cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "REVERIE_ADMIN_KEY has 3 characters; use at least 16" in result.stderr
    assert not (tmp_path / "reverie.db").exists()
