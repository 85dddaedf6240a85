"""Settings: parsing from the environment, and the reference staying true."""

from __future__ import annotations

from pathlib import Path

import pytest

from tippen_rt.config import Settings, SettingsError, describe_settings

README = Path(__file__).resolve().parents[2] / "README.md"


def test_environment_values_are_typed() -> None:
    settings = Settings.from_env(
        {
            "TIPPEN_PORT": "9001",
            "TIPPEN_TRUST_FORWARDED_FOR": "yes",
            "TIPPEN_SNAPSHOT_INTERVAL_S": "0.5",
            "TIPPEN_DB_PATH": "/tmp/x.db",
            "TIPPEN_TYPO": "1",
        }
    )
    assert (settings.port, settings.trust_forwarded_for) == (9001, True)
    assert settings.snapshot_interval_s == 0.5
    assert settings.db_path == Path("/tmp/x.db")
    assert settings.extra == {"TIPPEN_TYPO": "1"}


def test_flags_override_only_what_was_passed() -> None:
    settings = Settings.from_env(
        {"TIPPEN_PORT": "9001", "TIPPEN_HOST": "0.0.0.0"}, port=None, host="127.0.0.2"
    )
    assert (settings.port, settings.host) == (9001, "127.0.0.2")


@pytest.mark.parametrize(
    ("name", "value"),
    [("TIPPEN_PORT", "x"), ("TIPPEN_DEMO", "maybe"), ("TIPPEN_SNAPSHOT_INTERVAL_S", "soon")],
)
def test_bad_values_name_the_variable(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=name):
        Settings.from_env({name: value})


def test_every_setting_is_documented_in_the_readme() -> None:
    readme = README.read_text()
    for doc in describe_settings():
        assert doc.doc, f"{doc.env} has no #: comment in config.py"
        assert f"`{doc.env}` | `{doc.default}` |" in readme, (
            f"{doc.env} is missing or out of date in README.md; "
            "regenerate with `tippen-rt config --markdown`"
        )
