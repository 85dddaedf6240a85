"""The real service against its own OpenAPI document, with schemathesis.

schemathesis (its command line: its pytest plugin does not run on pytest 9)
loads ``/openapi.json`` from a running ``tippen-rt serve`` and
sends every operation generated requests (a bounded number of examples
each), logged in as the tenant's admin and with the operator token.  Every
answer must be no 5xx, a documented status, a documented content type and
headers, and a body that matches its schema.  ``/logout`` is left out: it
would end the session the other operations use (its own tests cover it).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ..conftest import ORIGIN
from ..support.client import Client
from ..support.server import ServerProcess, running_server
from .test_cli_and_process import add_tenant

pytestmark = pytest.mark.slow

TOKEN = "op-contract"
#: Generated requests per operation (about 35 operations); the run ends when
#: each has had them (a --max-time budget would make fuzzing repeat until spent).
MAX_EXAMPLES = 100
#: The whole run takes about 40 s here (2,400 requests); past this it has hung.
MAX_TIME_S = 240
CHECKS = [
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
]


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, str]]:
    db = tmp_path_factory.mktemp("contract") / "t.db"
    created = add_tenant(db, "acme", ORIGIN)
    with running_server(db, env={"TIPPEN_OPERATOR_TOKEN": TOKEN}) as server:
        client = Client(server.url)
        status, _, headers = client.post_json_full("/login", {"token": created["admin_token"]})
        client.close()
        assert status == 200
        # Something to find: a user with events and an alert (four errors at once).
        now = int(time.time() * 1000)
        client = Client(server.url)
        events = [{"type": "route", "route": "/a", "timestamp": now}] + [
            {"type": "error", "message": f"e{i}", "timestamp": now} for i in range(4)
        ]
        batch = {
            "apiKey": created["api_key"],
            "userId": "ann",
            "subscriptionTier": "paid",
            "events": events,
        }
        assert client.post_json("/api/track/user-activity", batch, {"Origin": ORIGIN})[0] == 200
        client.close()
        yield server, headers["set-cookie"].split(";", 1)[0]
        assert server.proc.poll() is None, server.log()  # nothing brought it down


def test_the_service_answers_as_its_openapi_document_says(
    service: tuple[ServerProcess, str], tmp_path: Path
) -> None:
    server, cookie = service
    cmd = [
        str(Path(sys.executable).with_name("schemathesis")),
        "run",
        f"{server.url}/openapi.json",
        "--checks",
        ",".join(CHECKS),
        "--max-examples",
        str(MAX_EXAMPLES),
        "--phases",
        "examples,fuzzing",
        "--seed",
        "21",
        "--workers",
        "1",
        "--request-timeout",
        "10",
        "--max-redirects",
        "0",
        "--exclude-path",
        "/logout",
        "--header",
        f"Cookie: {cookie}",
        "--header",
        f"Authorization: Bearer {TOKEN}",
        "--report",
        "junit",
        "--report-dir",
        str(tmp_path),
    ]
    done = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        timeout=MAX_TIME_S + 60,
        cwd=tmp_path,
        env={**os.environ, "NO_COLOR": "1", "SCHEMATHESIS_HOOKS": ""},
    )
    assert done.returncode == 0, done.stdout[-20000:] + done.stderr[-5000:]
    # It did test: every operation but /logout, many requests each, all passing.
    selected = re.search(r"Selected: (\d+)/(\d+)\s+Tested: (\d+)", done.stdout)
    cases = re.search(r"(\d+) generated, (\d+) passed", done.stdout)
    assert selected is not None and cases is not None, done.stdout[-3000:]
    chosen, total, tested = map(int, selected.groups())
    assert (chosen, tested) == (total - 1, total - 1) and total >= 33
    generated, passed = map(int, cases.groups())
    assert generated == passed >= 20 * tested
