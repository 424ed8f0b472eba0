"""settings.py: secrets never show in the Settings' repr (a traceback or a debug print would log them)."""
import settings as settings_module


def test_the_repr_holds_no_secret(service_env):
    env = {**service_env, "DATABASE_URL": "mysql://gym:db-Pa55word-x@127.0.0.1:3306/gym",
           "REDIS_URL": "redis://:redis-Pa55word@127.0.0.1:6379/0"}
    loaded = settings_module.load(env)
    text = repr(loaded) + str(loaded)
    for secret in ("db-Pa55word-x", "redis-Pa55word", env["SECRET_KEY"], env["WECHAT_APP_SECRET"],
                   loaded.wechatpay_apiv3_key, "PRIVATE KEY"):
        assert secret not in text
    assert "127.0.0.1" in text  # it still says where things are


def test_trusted_proxies_must_be_cidrs(service_env):
    import pytest

    with pytest.raises(settings_module.SettingsError, match="TRUSTED_PROXIES"):
        settings_module.load({**service_env, "TRUSTED_PROXIES": "10.0.0.0/8, not-a-network"})
