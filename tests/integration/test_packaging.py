"""The built wheel and sdist give a working service, installed away from the checkout.

``python -m build`` makes the sdist and then the wheel from that sdist (as
PyPI users get them).  Each is installed into a fresh virtualenv in a
temporary directory, with the versions of ``requirements.txt``, and its own
``tippen-rt`` serves the tracker, the dashboard's pages and files, the sample
app and ``/healthz`` from the installed package: nothing comes from ``src/``.
"""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from tippen_rt.http._tracker_assets import minify_script

from ..support.client import Client
from ..support.server import running_server

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
TRACKER_SOURCE = ROOT / "src" / "tippen_rt" / "tracker" / "tippen-app-tracker.js"
#: Building and installing download nothing when pip's cache has it all, and
#: each step is bounded: a stuck index fails the test instead of hanging it.
STEP_TIMEOUT_S = 240


def _clean_env() -> dict[str, str]:
    """This environment without what would point Python at the checkout or its venv."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TIPPEN_")}
    for name in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME"):
        env.pop(name, None)
    return env


def _run(*cmd: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [str(c) for c in cmd],
        cwd=cwd,
        env=_clean_env(),
        capture_output=True,
        text=True,
        timeout=STEP_TIMEOUT_S,
        check=False,
    )
    assert done.returncode == 0, f"{cmd} failed:\n{done.stdout}\n{done.stderr}"
    return done


def _clean_copy(dest: Path) -> Path:
    """The checkout's files as a fresh clone has them (with uncommitted changes,
    without ignored files): no egg-info or build/ left from an earlier build
    can slip files into the sdist."""
    listed = _run(
        "git", "ls-files", "-z", "--cached", "--others", "--exclude-standard", cwd=ROOT
    ).stdout
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    return dest


@pytest.fixture(scope="module")
def dists(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    source = _clean_copy(tmp_path_factory.mktemp("source"))
    out = tmp_path_factory.mktemp("dist")
    _run(sys.executable, "-m", "build", "--outdir", out, source, cwd=out)
    wheels, sdists = list(out.glob("*.whl")), list(out.glob("*.tar.gz"))
    assert len(wheels) == 1 and len(sdists) == 1, list(out.iterdir())
    return {"wheel": wheels[0], "sdist": sdists[0]}


def _install(artifact: Path, where: Path) -> Path:
    """A new virtualenv under ``where`` with ``artifact`` installed; its bin/ directory."""
    venv = where / "venv"
    _run(sys.executable, "-m", "venv", venv, cwd=where)
    _run(
        venv / "bin" / "python",
        "-m",
        "pip",
        "install",
        "-q",
        "-c",
        ROOT / "requirements.txt",
        artifact,
        cwd=where,
    )
    return venv / "bin"


def _check_installed_service(bin_dir: Path, where: Path) -> None:
    python = bin_dir / "python"
    # The package imported is the installed one, and Redis is not there: an extra.
    found = _run(python, "-c", "import tippen_rt; print(tippen_rt.__file__)", cwd=where)
    assert Path(found.stdout.strip()).is_relative_to(bin_dir.parent), found.stdout
    # The TypeScript declarations ship beside the script.
    assert (Path(found.stdout.strip()).parent / "tracker" / "tippen.d.ts").is_file()
    no_redis = subprocess.run(
        [str(python), "-c", "import redis"], cwd=where, env=_clean_env(), capture_output=True
    )
    assert no_redis.returncode != 0

    db = where / "tippen.db"
    tippen = str(bin_dir / "tippen-rt")
    created = orjson.loads(
        _run(tippen, "--db", db, "tenant", "add", "acme", "--json", cwd=where).stdout
    )

    # Configured for Redis without the extra: one line that says what to install.
    refused = subprocess.run(
        [tippen, "--db", str(where / "other.db"), "serve", "--port", "0"],
        cwd=where,
        env={**_clean_env(), "TIPPEN_REDIS_URL": "redis://127.0.0.1:1/0"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode == 2
    assert refused.stderr.count("\n") == 1 and "tippen-rt[redis]" in refused.stderr

    with running_server(db, "--demo", command=[tippen], cwd=where, env=_clean_env()) as server:
        client = Client(server.url)
        status, body = client.get("/healthz")
        assert status == 200 and orjson.loads(body)["ok"] is True

        status, body = client.get("/tippen-app-tracker.js")
        assert status == 200
        assert body == minify_script(TRACKER_SOURCE.read_text()).encode()
        status, body = client.get("/tippen-app-tracker.js", {"Accept-Encoding": "gzip"})
        assert status == 200 and gzip.decompress(body).startswith(b"/*! tippen-rt tracker")

        status, body = client.get("/login")
        assert status == 200 and b'name="token"' in body
        status, body = client.get("/static/admin/dashboard.js")
        assert status == 200 and len(body) > 1000

        status, _, headers = client.post_json_full("/login", {"token": created["admin_token"]})
        assert status == 200
        cookie = headers["set-cookie"].split(";", 1)[0]
        status, body = client.get("/user-activity", {"Cookie": cookie})
        assert status == 200 and b"/static/admin/dashboard.js" in body

        status, body = client.get("/demo/app")
        assert status == 200 and b'src="/tippen-app-tracker.js"' in body
        status, _ = client.get("/demo/app.js")
        assert status == 200
        client.close()


def test_the_wheel_installs_and_serves(dists: dict[str, Path], tmp_path: Path) -> None:
    _check_installed_service(_install(dists["wheel"], tmp_path), tmp_path)


def test_the_sdist_installs_and_serves(dists: dict[str, Path], tmp_path: Path) -> None:
    _check_installed_service(_install(dists["sdist"], tmp_path), tmp_path)


def test_the_sdist_holds_the_tracker_and_the_lock(dists: dict[str, Path]) -> None:
    import tarfile

    with tarfile.open(dists["sdist"]) as sdist:
        names = {n.split("/", 1)[1] for n in sdist.getnames() if "/" in n}
    assert "src/tippen_rt/tracker/tippen-app-tracker.js" in names
    assert "src/tippen_rt/tracker/examples/index.html" in names
    assert "src/tippen_rt/web/templates/login.html" in names
    assert "requirements.txt" in names
