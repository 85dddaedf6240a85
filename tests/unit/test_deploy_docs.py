"""docs/deploy.md's files are valid as written: the systemd units pass
``systemd-analyze verify``, the nginx and Caddy configurations pass their own
checks, the environment file holds only known settings with good values.

Each file in the page follows a ``<!-- file: NAME -->`` line.  A check whose
tool is not installed is skipped, saying which Debian package brings it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tippen_rt.config import Settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "docs" / "deploy.md"
_FILE = re.compile(r"<!-- file: (\S+) -->\n```[\w-]*\n(.*?)\n```", re.S)
#: Where the page installs tippen-rt, and where it is installed here.
INSTALLED = "/opt/tippen-rt/bin/tippen-rt"
HERE = str(Path(sys.executable).with_name("tippen-rt"))
UNITS = ("tippen-rt.service", "tippen-rt-backup.service", "tippen-rt-backup.timer")


def doc_files() -> dict[str, str]:
    return {name: body + "\n" for name, body in _FILE.findall(DEPLOY.read_text())}


def _write(tmp_path: Path, name: str, replace: dict[str, str] | None = None) -> Path:
    text = doc_files()[name]
    for old, new in (replace or {}).items():
        assert old in text, f"{name} no longer mentions {old}"
        text = text.replace(old, new)
    path = tmp_path / name
    path.write_text(text)
    return path


def test_the_page_has_every_file_it_promises() -> None:
    assert set(doc_files()) == {
        "env",
        *UNITS,
        "Caddyfile",
        "nginx.conf",
        "prometheus.yml",
    }


def test_the_environment_file_holds_known_settings_with_good_values() -> None:
    values = {}
    for line in doc_files()["env"].splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            values[name] = value
    settings = Settings.from_env(values)
    assert settings.extra == {}, "unknown settings in docs/deploy.md's env file"
    assert settings.problems() == []
    assert str(settings.proxies) == "1" and settings.log_format == "json"


def test_the_prometheus_job_scrapes_with_the_operator_token() -> None:
    job = yaml.safe_load(doc_files()["prometheus.yml"])["scrape_configs"][0]
    assert job["authorization"]["type"] == "Bearer"
    assert job["static_configs"][0]["targets"] == ["127.0.0.1:8080"]


@pytest.mark.skipif(
    shutil.which("systemd-analyze") is None,
    reason="systemd-analyze is not installed (Debian package systemd)",
)
def test_the_systemd_units_verify(tmp_path: Path) -> None:
    paths = [_write(tmp_path, name, {INSTALLED: HERE}) for name in UNITS[:2]]
    paths.append(_write(tmp_path, UNITS[2]))
    done = subprocess.run(
        ["systemd-analyze", "verify", *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "SYSTEMD_LOG_LEVEL": "warning"},
    )
    assert done.returncode == 0 and done.stderr == "" and done.stdout == "", done.stderr


@pytest.mark.skipif(shutil.which("nginx") is None, reason="nginx is not installed (Debian nginx)")
@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed")
def test_the_nginx_site_passes_nginx_t(tmp_path: Path) -> None:
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-keyout", str(key), "-out", str(cert), "-subj", "/CN=tippen.example.com"),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    live = "/etc/letsencrypt/live/tippen.example.com"
    site = _write(
        tmp_path,
        "nginx.conf",
        {
            f"{live}/fullchain.pem": str(tmp_path / "cert.pem"),
            f"{live}/privkey.pem": str(tmp_path / "key.pem"),
        },
    )
    temp = " ".join(
        f"{kind}_temp_path {tmp_path / kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    main = tmp_path / "main.conf"
    main.write_text(
        f"pid {tmp_path / 'nginx.pid'}; error_log {tmp_path / 'error.log'};\n"
        f"events {{}}\nhttp {{ access_log off; {temp} include {site}; }}\n"
    )
    done = subprocess.run(
        ["nginx", "-t", "-c", str(main), "-p", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "test is successful" in done.stderr


@pytest.mark.skipif(shutil.which("caddy") is None, reason="caddy is not installed (Debian caddy)")
def test_the_caddyfile_validates(tmp_path: Path) -> None:
    caddyfile = _write(tmp_path, "Caddyfile")
    home = {"HOME": str(tmp_path), "XDG_DATA_HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path)}
    done = subprocess.run(
        ["caddy", "validate", "--adapter", "caddyfile", "--config", str(caddyfile)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **home},
    )
    assert done.returncode == 0 and "Valid configuration" in done.stdout, done.stderr
