"""Settings: parsing from the environment, and the reference staying true."""

from __future__ import annotations

from pathlib import Path

import pytest

from tippen_rt.config import (
    Settings,
    SettingsError,
    describe_settings,
    markdown_settings_table,
)

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


def test_the_readme_table_is_what_config_markdown_prints() -> None:
    readme = README.read_text()
    table = markdown_settings_table(describe_settings())
    assert table in readme, (
        "README.md's configuration table is out of date; paste `tippen-rt config --markdown`"
    )
    start = readme.index(table.splitlines()[0])
    following = readme[start + len(table) :].lstrip("\n")
    assert not following.startswith("| `TIPPEN_"), "README.md lists a setting that is gone"


def test_every_setting_is_documented_in_the_readme() -> None:
    readme = README.read_text()
    for doc in describe_settings():
        assert doc.doc, f"{doc.env} has no #: comment in config.py"
        assert f"`{doc.env}` | `{doc.default}` |" in readme, (
            f"{doc.env} is missing or out of date in README.md; "
            "regenerate with `tippen-rt config --markdown`"
        )


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"TIPPEN_LOG_LEVEL": "verbose"}, "TIPPEN_LOG_LEVEL=verbose: must be one of DEBUG"),
        ({"TIPPEN_LOG_FORMAT": "yaml"}, "TIPPEN_LOG_FORMAT=yaml: must be one of text, json"),
        ({"TIPPEN_METRICS_TENANTS": "-1"}, "TIPPEN_METRICS_TENANTS=-1: must be 0 or more"),
        ({"TIPPEN_PORT": "-5"}, "TIPPEN_PORT=-5: must be a port from 0 to 65535"),
        ({"TIPPEN_PORT": "70000"}, "TIPPEN_PORT=70000: must be a port"),
        ({"TIPPEN_SNAPSHOT_INTERVAL_S": "-1"}, "TIPPEN_SNAPSHOT_INTERVAL_S=-1.0: must be more"),
        ({"TIPPEN_SNAPSHOT_INTERVAL_S": "0"}, "TIPPEN_SNAPSHOT_INTERVAL_S=0.0: must be more"),
        ({"TIPPEN_INGEST_RATE_PER_KEY": "-1"}, "TIPPEN_INGEST_RATE_PER_KEY=-1.0: must be 0 or"),
        ({"TIPPEN_REDIS_URL": "localhost:6379"}, "TIPPEN_REDIS_URL=localhost:6379: must start"),
        ({"TIPPEN_PUBLIC_URL": "tippen.example.com"}, "TIPPEN_PUBLIC_URL=tippen.example.com"),
    ],
)
def test_bad_values_are_one_line_each(env: dict[str, str], says: str) -> None:
    problems = Settings.from_env(env).problems()
    assert len(problems) == 1 and problems[0].startswith(says), problems


def test_the_defaults_and_zero_where_it_means_none_are_fine() -> None:
    assert Settings().problems() == []
    zeros = {"TIPPEN_PORT": "0", "TIPPEN_INGEST_RATE_PER_KEY": "0", "TIPPEN_LOG_LEVEL": "debug"}
    assert Settings.from_env(zeros).problems() == []


def test_serve_refuses_bad_settings_with_one_line_each_and_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from tippen_rt.cli import main

    monkeypatch.setenv("TIPPEN_LOG_LEVEL", "verbose")
    monkeypatch.setenv("TIPPEN_SNAPSHOT_INTERVAL_S", "-1")
    db = tmp_path / "never.db"
    assert main(["serve", "--db", str(db), "--port", "-5"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and all(line.startswith("tippen-rt: TIPPEN_") for line in err), err
    assert not db.exists()
