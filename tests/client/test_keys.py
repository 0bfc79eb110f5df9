"""client.keys: the one lookup of a client's CURVE keys (the app's link and the trainer's round use it)."""

from __future__ import annotations

import shutil

import pytest

from backend.security import keygen
from client.keys import ClientKeys, CurveKeyError


def test_a_keygen_directory_gives_the_persons_own_pair(tmp_path):
    keygen(tmp_path, "alice")
    keygen(tmp_path, "bob")
    alice = ClientKeys.from_dir(tmp_path, "alice")
    assert alice == ClientKeys.from_files(tmp_path / "server.key", tmp_path / "clients" / "alice.key_secret")
    assert alice != ClientKeys.from_dir(tmp_path, "bob")
    assert len(alice.public) == len(alice.secret) == len(alice.server_public) == 40  # z85


def test_a_copy_with_one_client_key_is_enough_whatever_its_name(tmp_path):
    keygen(tmp_path / "keys", "laptop")
    copy = tmp_path / "copy"
    copy.mkdir()
    shutil.copy(tmp_path / "keys" / "server.key", copy)
    shutil.copy(tmp_path / "keys" / "clients" / "laptop.key_secret", copy)
    assert ClientKeys.from_dir(copy, "alice") == ClientKeys.from_dir(tmp_path / "keys", "laptop")


def test_missing_ambiguous_or_public_only_keys_name_the_file(tmp_path):
    with pytest.raises(CurveKeyError, match=r"server\.key: missing"):
        ClientKeys.from_dir(tmp_path, "alice")
    keygen(tmp_path)
    with pytest.raises(CurveKeyError, match=r"no client key .*keygen .* --client alice"):
        ClientKeys.from_dir(tmp_path, "alice")
    keygen(tmp_path, "bob")
    keygen(tmp_path, "carol")
    with pytest.raises(CurveKeyError, match=r"several client keys \(bob.key_secret, carol.key_secret\)"):
        ClientKeys.from_dir(tmp_path, "alice")
    with pytest.raises(CurveKeyError, match=r"bob\.key: holds no secret key"):
        ClientKeys.from_files(tmp_path / "server.key", tmp_path / "clients" / "bob.key")
