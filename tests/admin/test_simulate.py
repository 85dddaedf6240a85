"""``tippen-rt simulate`` against the real service in a subprocess."""

from __future__ import annotations

import random
import re
import sqlite3
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from tippen_rt.simulate import PERSONAS, UnknownApiKey, persona_for, simulate

from ..support.server import running_server

API_KEY_LINE = re.compile(r"API key:\s+(\S+)")


def test_personas_come_in_the_documented_mix() -> None:
    rng = random.Random(7)
    counts = Counter(persona_for(rng) for _ in range(2000))
    assert set(counts) == set(PERSONAS)
    assert counts["browser"] > counts["stuck"] > 0


async def test_simulated_users_reach_the_store(tmp_path: Path) -> None:
    with running_server(tmp_path / "t.db", "--demo") as server:
        server.wait_for_log("API key:")
        match = API_KEY_LINE.search(server.log())
        assert match
        stats = await simulate(
            server.url,
            match.group(1),
            users=12,
            duration_s=4.0,
            seed=3,
            flush_s=0.5,
            heartbeat_s=1.0,
            ramp_s=0.5,
        )
        assert stats.batches > 12 and stats.failures == 0
        assert set(stats.statuses) == {200}
        assert sum(stats.personas.values()) == 12
        conn = sqlite3.connect(tmp_path / "t.db")
        try:
            users, events = conn.execute(
                "SELECT count(DISTINCT user_id), count(*) FROM user_activity_events"
            ).fetchone()
        finally:
            conn.close()
        # A batch in flight when the run ended may be stored without its answer read.
        assert users == 12 and events >= stats.events

        with pytest.raises(BaseExceptionGroup) as caught:
            await simulate(server.url, "client_unknown", users=1, duration_s=5.0, ramp_s=0)
        assert caught.value.split(UnknownApiKey)[0] is not None


def test_the_cli_checks_its_arguments() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "tippen_rt",
            "simulate",
            "--url",
            "http://127.0.0.1:9",
            "--api-key",
            "k",
            "--users",
            "0",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2 and "positive" in result.stderr
