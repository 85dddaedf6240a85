"""What ``serve --demo`` shows and allows, wherever it is bound."""

from __future__ import annotations

import pytest

from tippen_rt.demo import demo_base_url, demo_origins


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
