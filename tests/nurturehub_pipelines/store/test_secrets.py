"""Credentials at rest: Fernet under the deployment's key, and a changed key refused in words."""

from __future__ import annotations

from pathlib import Path

import pytest

from nurturehub_pipelines.store.secrets import (
    CredentialsUnreadable,
    decrypt_credentials,
    encrypt_credentials,
    hash_token,
    new_token,
)

CREDENTIALS = {"api_key": "agentos-live-key-1234567890", "password": "p@ss\tword"}


@pytest.fixture(autouse=True)
def key(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("NURTUREHUB_HOME", str(tmp_path))
    monkeypatch.setenv("NURTUREHUB_SECRET_KEY", "the-deployment-key")


def test_credentials_round_trip_and_are_not_readable_at_rest() -> None:
    stored = encrypt_credentials(CREDENTIALS)
    assert stored is not None
    assert all(value not in stored for value in CREDENTIALS.values())
    assert "api_key" not in stored  # not even the names
    assert decrypt_credentials(stored) == CREDENTIALS
    assert encrypt_credentials(CREDENTIALS) != stored  # a fresh IV each time: equal secrets don't show as equal


def test_no_credentials_are_stored_as_nothing() -> None:
    assert encrypt_credentials({}) is None
    assert decrypt_credentials(None) == {}


def test_another_key_is_refused_with_a_message_that_names_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    stored = encrypt_credentials(CREDENTIALS)
    monkeypatch.setenv("NURTUREHUB_SECRET_KEY", "a-different-key")
    with pytest.raises(CredentialsUnreadable) as refused:
        decrypt_credentials(stored)
    assert "NURTUREHUB_SECRET_KEY" in str(refused.value) and "reconnect" in str(refused.value)
    assert "a-different-key" not in str(refused.value) and "the-deployment-key" not in str(refused.value)
    monkeypatch.setenv("NURTUREHUB_SECRET_KEY", "the-deployment-key")
    assert decrypt_credentials(stored) == CREDENTIALS  # the right key still opens them


def test_without_a_configured_key_one_is_generated_once_and_kept(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("NURTUREHUB_SECRET_KEY")
    stored = encrypt_credentials(CREDENTIALS)
    assert decrypt_credentials(stored) == CREDENTIALS  # read back with the key file written the first time


def test_tokens_are_random_and_hashed_one_way() -> None:
    token = new_token()
    assert token.startswith("nh_") and len(token) > 40 and token != new_token()
    digest = hash_token(token)
    assert digest == hash_token(token) and len(digest) == 64 and token not in digest
    assert hash_token(token + "x") != digest
