"""models/personal_data.py: the stored formats (ciphertext with its key id, lookup hash, masked form), what does not
decrypt, the previous key during a change, and DATA_KEY_FILE as settings.py reads it."""
from __future__ import annotations

import os
import re

import pytest

import settings as settings_module
from models import personal_data
from models.personal_data import Keyring, PersonalDataError

OPENID = "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"


def test_a_ciphertext_names_its_key_and_reads_back():
    ring = Keyring(os.urandom(32))
    first, second = ring.encrypt(OPENID), ring.encrypt(OPENID)
    assert re.fullmatch(r"v1\.[0-9a-f]{8}\.[A-Za-z0-9_-]+", first)
    assert personal_data.key_id_of(first) == ring.current.key_id and first.startswith(
        personal_data.ciphertext_prefix(ring.current.key_id))
    assert first != second and OPENID not in first  # a fresh nonce each time
    assert ring.decrypt(first) == ring.decrypt(second) == OPENID
    widest = ring.encrypt("o" * 128)
    assert len(widest) == personal_data.CIPHERTEXT_MAX_CHARS <= 255  # the VARCHAR(255) columns hold any openid


def test_what_was_changed_moved_or_made_under_another_key_does_not_decrypt():
    ring = Keyring(os.urandom(32))
    token = ring.encrypt(OPENID)
    head, body = token.rsplit(".", 1)
    flipped = head + "." + ("A" if body[5] != "A" else "B").join((body[:5], body[6:]))
    with pytest.raises(PersonalDataError):
        ring.decrypt(flipped)
    with pytest.raises(PersonalDataError):
        ring.decrypt(token, field="unionid")  # the field is bound in: a value moved to another column fails
    with pytest.raises(PersonalDataError, match="DATA_KEY_PREVIOUS_FILE"):
        ring.decrypt(Keyring(os.urandom(32)).encrypt(OPENID))
    for junk in ("", OPENID, "v1.zz.abc", "v1.0123abcd.", "v1.0123abcd.AAAA"):
        with pytest.raises(PersonalDataError):
            ring.decrypt(junk)


def test_during_a_key_change_both_keys_read_and_the_current_one_writes():
    old, new = os.urandom(32), os.urandom(32)
    before = Keyring(old)
    stored = before.encrypt(OPENID)
    during = Keyring(new, previous=old)
    assert during.decrypt(stored) == OPENID and not during.is_current(stored)
    assert during.is_current(during.encrypt(OPENID))
    assert during.lookup_hashes(OPENID) == [Keyring(new).hash(OPENID), before.hash(OPENID)]
    assert during.key_ids == (during.current.key_id, before.current.key_id)
    assert Keyring(new, previous=new).key_ids == (during.current.key_id,)


def test_the_lookup_hash_is_keyed():
    key = os.urandom(32)
    assert re.fullmatch(r"[0-9a-f]{64}", Keyring(key).hash(OPENID))
    assert Keyring(key).hash(OPENID) == Keyring(key).hash(OPENID) != Keyring(os.urandom(32)).hash(OPENID)
    assert Keyring(key).hash(OPENID) != Keyring(key).hash(OPENID, field="unionid")


def test_the_masked_form():
    assert personal_data.mask_value(OPENID) == "oUp***S6o"
    assert personal_data.mask_value("o-short") == "***"
    assert len(personal_data.mask_value("x" * 128)) <= personal_data.MASKED_MAX_CHARS


def test_a_payment_snapshot_keeps_no_payer_and_masks_ids_that_name_a_person():
    txn = {"transaction_id": "4200000001", "out_trade_no": "a" * 32, "trade_state": "SUCCESS",
           "payer": {"openid": OPENID}, "amount": {"total": 20000}, "scene_info": {"sub_openid": OPENID},
           "promotion_detail": [{"touser": OPENID, "amount": 1}]}
    kept = personal_data.snapshot(txn)
    assert "payer" not in kept and OPENID not in repr(kept)
    assert kept["transaction_id"] == "4200000001" and kept["amount"] == {"total": 20000}
    assert kept["scene_info"] == {"sub_openid": "oUp***S6o"} and kept["promotion_detail"][0]["touser"] == "oUp***S6o"


def _env(service_env, **files):
    return {**{k: v for k, v in service_env.items() if not k.startswith("DATA_KEY")}, **files}


def test_data_key_file_is_read_as_the_contract_says(service_env, tmp_path):
    raw, hexed, bad = tmp_path / "raw.key", tmp_path / "hex.key", tmp_path / "bad.key"
    key = os.urandom(32)
    raw.write_bytes(key)
    hexed.write_text(key.hex().upper() + "\n")
    assert settings_module.load(_env(service_env, DATA_KEY_FILE=str(raw))).data_key == key
    loaded = settings_module.load(_env(service_env, DATA_KEY_FILE=str(hexed), DATA_KEY_PREVIOUS_FILE=str(raw)))
    assert loaded.data_key == loaded.data_key_previous == key
    assert key.hex() not in repr(loaded) and repr(key) not in repr(loaded)
    for content in (b"", os.urandom(31), os.urandom(33), b"g" * 64, key.hex()[:63].encode()):
        bad.write_bytes(content)
        with pytest.raises(settings_module.SettingsError, match="^DATA_KEY_FILE must hold 32 random bytes or 64 hex"):
            settings_module.load(_env(service_env, DATA_KEY_FILE=str(bad)))
    with pytest.raises(settings_module.SettingsError, match="^DATA_KEY_FILE is not set$"):
        settings_module.load(_env(service_env))
    with pytest.raises(settings_module.SettingsError, match="^DATA_KEY_PREVIOUS_FILE: cannot read"):
        settings_module.load(_env(service_env, DATA_KEY_FILE=str(raw), DATA_KEY_PREVIOUS_FILE=str(tmp_path / "no")))
