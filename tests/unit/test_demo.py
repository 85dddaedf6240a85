"""What ``serve --demo`` shows and allows, wherever it is bound."""

from __future__ import annotations

from pathlib import Path

import pytest

from tippen_rt.demo import demo_base_url, demo_origins, ensure_demo_tenant
from tippen_rt.persist import open_database, rotate_admin_token
from tippen_rt.tenants import hash_admin_token


@pytest.mark.parametrize(
    ("bound", "public", "shown", "origins"),
    [
        (
            "http://127.0.0.1:8080",
            "",
            "http://127.0.0.1:8080",
            ["http://127.0.0.1:8080", "http://localhost:8080"],
        ),
        (
            "http://0.0.0.0:5000",
            "",
            "http://127.0.0.1:5000",
            ["http://127.0.0.1:5000", "http://localhost:5000"],
        ),
        (
            "http://[::]:5000",
            "",
            "http://127.0.0.1:5000",
            ["http://127.0.0.1:5000", "http://localhost:5000"],
        ),
        (
            "http://0.0.0.0:5000",
            "https://tippen.example.com/",
            "https://tippen.example.com",
            ["http://127.0.0.1:5000", "http://localhost:5000", "https://tippen.example.com"],
        ),
        ("http://10.1.2.3:8080", "", "http://10.1.2.3:8080", ["http://10.1.2.3:8080"]),
    ],
)
def test_the_demo_shows_a_url_that_works_and_allows_its_origins(
    bound: str, public: str, shown: str, origins: list[str]
) -> None:
    assert demo_base_url(bound, public) == shown
    assert demo_origins(bound, public) == origins


def test_the_demo_login_survives_restarts_until_someone_rotates_it(tmp_path: Path) -> None:
    conn = open_database(tmp_path / "demo.db")
    try:
        first = ensure_demo_tenant(conn, "http://127.0.0.1:8080")
        again = ensure_demo_tenant(conn, "http://127.0.0.1:8080")  # a restart
        assert again.admin_token == first.admin_token
        assert hash_admin_token(again.admin_token) == again.tenant.admin_token_hash
        rotated = rotate_admin_token(conn, "demo")  # e.g. tippen-rt tenant rotate-admin-token
        after = ensure_demo_tenant(conn, "http://127.0.0.1:8080")
        assert after.admin_token not in (first.admin_token, rotated)
        assert hash_admin_token(after.admin_token) == after.tenant.admin_token_hash
        assert ensure_demo_tenant(conn, "http://127.0.0.1:8080").admin_token == after.admin_token
    finally:
        conn.close()
