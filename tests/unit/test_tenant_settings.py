"""TenantSettings' trigger switches and tiers, and require_origin: stored as
JSON, read back strictly, changed by ``tenant set``'s words."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from tippen_rt.tenants import DEFAULT_TRIGGER_TIERS, TenantSettings

ALL = ("free_trial", "paid", "enterprise")


def test_by_default_every_trigger_is_on_for_its_designed_tiers_and_origin_is_required() -> None:
    s = TenantSettings()
    assert s.require_origin
    assert [s.tiers_of(t) for t in DEFAULT_TRIGGER_TIERS] == [
        ALL,
        ("free_trial",),
        ALL,
        ("free_trial",),
    ]
    assert s.trigger_applies("stuck_on_page", "enterprise")
    assert not s.trigger_applies("low_activity", "paid")


def test_settings_stored_before_these_fields_existed_read_as_the_defaults() -> None:
    old = orjson.loads(orjson.dumps(TenantSettings().to_mapping()))
    for name in ("require_origin", "triggers_off", "trigger_tiers"):
        del old[name]
    assert TenantSettings.from_mapping(old) == TenantSettings()


def test_switches_and_tiers_survive_the_json_round_trip_in_a_readable_form() -> None:
    s = TenantSettings().with_triggers(
        {"low_activity": False},
        {"stuck_on_page": ("enterprise", "paid"), "long_inactivity": ALL},
    )
    stored = orjson.loads(orjson.dumps(s.to_mapping()))
    assert stored["triggers_off"] == ["low_activity"]
    # Canonical order, whatever order they were given in.
    assert stored["trigger_tiers"] == {
        "stuck_on_page": ["paid", "enterprise"],
        "long_inactivity": ["free_trial", "paid", "enterprise"],
    }
    back = TenantSettings.from_mapping(stored)
    assert back == s
    assert not back.trigger_applies("low_activity", "free_trial")
    assert not back.trigger_applies("stuck_on_page", "free_trial")
    assert back.trigger_applies("long_inactivity", "enterprise")


def test_on_again_and_default_tiers_leave_nothing_behind() -> None:
    s = TenantSettings().with_triggers({"low_activity": False}, {"stuck_on_page": ("paid",)})
    again = s.with_triggers({"low_activity": True}, {"stuck_on_page": None})
    assert again == TenantSettings()
    # Setting the default tiers by name is the same as the default.
    assert TenantSettings().with_triggers({}, {"low_activity": ("free_trial",)}) == (
        TenantSettings()
    )


@pytest.mark.parametrize(
    ("field", "value", "says"),
    [
        ("triggers_off", "low_activity", "must be a list"),
        ("triggers_off", ["low_activty"], "'low_activty' is not a trigger"),
        ("triggers_off", [1], "must be a list"),
        ("trigger_tiers", [["low_activity", ["paid"]]], "must be an object"),
        ("trigger_tiers", {"nope": ["paid"]}, "'nope' is not a trigger"),
        ("trigger_tiers", {"low_activity": "paid"}, "must be a list of tiers"),
        ("trigger_tiers", {"low_activity": ["gold"]}, "'gold' is not a tier"),
        ("trigger_tiers", {"low_activity": []}, "needs at least one tier"),
        ("require_origin", "yes", "wrong type"),
        ("require_origin", 1, "wrong type"),
    ],
)
def test_bad_stored_values_are_refused_with_the_setting_named(
    field: str, value: Any, says: str
) -> None:
    with pytest.raises(ValueError, match=says) as caught:
        TenantSettings.from_mapping({field: value})
    assert field in str(caught.value) or "tenant setting" in str(caught.value)


def test_the_cli_words_become_changes() -> None:
    switched, tiers = TenantSettings.trigger_changes(
        ["low_activity=off", " stuck_on_page = on "],
        ["stuck_on_page=enterprise, paid", "low_activity=all", "long_inactivity=default"],
    )
    assert switched == {"low_activity": False, "stuck_on_page": True}
    assert tiers == {
        "stuck_on_page": ("paid", "enterprise"),
        "low_activity": ALL,
        "long_inactivity": None,
    }


@pytest.mark.parametrize(
    ("on_off", "tiers", "says"),
    [
        (["low_activity"], [], "--trigger takes NAME=on or NAME=off"),
        (["low_activity=maybe"], [], "--trigger takes NAME=on or NAME=off"),
        (["stuck=off"], [], "--trigger: 'stuck' is not a trigger; triggers: stuck_on_page,"),
        ([], ["stuck_on_page"], "--trigger-tiers takes NAME=TIER"),
        ([], ["stuck_on_page="], "needs at least one tier"),
        ([], ["stuck_on_page=paid,gold"], "'gold' is not a tier; tiers: free_trial, paid"),
        ([], ["nope=paid"], "'nope' is not a trigger"),
    ],
)
def test_bad_cli_words_say_what_is_wrong(on_off: list[str], tiers: list[str], says: str) -> None:
    with pytest.raises(ValueError, match=says.replace("(", r"\(")):
        TenantSettings.trigger_changes(on_off, tiers)
