"""One typed settings object, read from ``TIPPEN_*`` environment variables.

Every setting has a default that gives the embedded setup (a SQLite file, no
Redis, no Slack).  CLI flags override only what the user actually passed::

    settings = Settings.from_env(os.environ).replace(port=9000)

Units live in the names (``_s`` seconds, ``_ms`` milliseconds, ``_bytes``).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import ipaddress
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

ENV_PREFIX = "TIPPEN_"
#: Values of TIPPEN_STORE_WRITER.
STORE_WRITERS = ("process", "thread")

MINUTE_S = 60.0


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
LOG_FORMATS = ("text", "json")
#: Numeric settings for which 0 means something (none, no limit, any port).
_MAY_BE_ZERO = frozenset(
    {
        "port",
        "graceful_timeout_s",
        "ingest_rate_per_key",
        "ingest_burst_per_key",
        "ingest_rate_per_address",
        "ingest_burst_per_address",
        "hub_user_interval_s",
        "slack_retry_window_s",
        "metrics_tenants",
    }
)
#: URL settings and the schemes they take (when not empty).
_URL_SCHEMES = {
    "public_url": ("http://", "https://"),
    "redis_url": ("redis://", "rediss://", "unix://"),
    "slack_api_url": ("http://", "https://"),
    "slack_webhook_url": ("http://", "https://"),
}


class SettingsError(ValueError):
    """A ``TIPPEN_*`` variable or flag has a value of the wrong form."""


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class TrustedProxies:
    """The proxies in front of the service: a count of hops, or their networks.

    ``TrustedProxies.parse("1")``: one proxy, whatever its address (nginx on the
    same host).  ``TrustedProxies.parse("10.0.0.0/8, 192.0.2.7")``: the peer and
    every forwarding entry inside these networks is a proxy.  Empty: none.
    """

    hops: int = 0
    networks: tuple[Network, ...] = ()

    @classmethod
    def parse(cls, text: str) -> TrustedProxies:
        """From the setting's text; ValueError says what is wrong."""
        text = text.strip()
        if not text:
            return cls()
        if text.isdigit():
            hops = int(text)
            if hops > 32:
                raise ValueError("a count of proxy hops is at most 32")
            return cls(hops=hops)
        networks = []
        for item in text.replace(";", ",").split(","):
            item = item.strip()
            if not item:
                continue
            try:
                networks.append(ipaddress.ip_network(item, strict=False))
            except ValueError:
                raise ValueError(
                    f"{item!r} is not an address or network; give a number of hops"
                    " or addresses and networks such as 10.0.0.0/8, 192.0.2.7"
                ) from None
        return cls(networks=tuple(networks))

    def __bool__(self) -> bool:
        return bool(self.hops or self.networks)

    def __str__(self) -> str:
        if self.hops:
            return str(self.hops)
        return ", ".join(str(n) for n in self.networks)

    def trusts(self, address: ipaddress.IPv4Address | ipaddress.IPv6Address | None) -> bool:
        """True if ``address`` is inside one of the networks."""
        return address is not None and any(address in n for n in self.networks)


@dataclass(frozen=True, slots=True)
class Settings:
    """Process-wide configuration. Per-tenant settings live in the tenants table."""

    # Storage
    #: The SQLite file (also --db).
    db_path: Path = Path("tippen.db")
    #: Jobs waiting for the SQLite writer; beyond this ingest answers 503.
    store_queue_jobs: int = 2048
    #: Upper bound on rows written by one group commit.
    store_max_rows_per_commit: int = 20_000
    #: Where ingest's inserts run: "process" (a writer process with its own GIL,
    #: started and stopped with the service) or "thread" (a worker thread).
    store_writer: str = "process"

    # HTTP
    #: Address to listen on (also --host).
    host: str = "127.0.0.1"
    #: Port to listen on; 0 picks a free one (also --port).
    port: int = 8080
    #: Also serve HTTP/2 on this cleartext port (prior knowledge or h2c upgrade), e.g.
    #: behind a TLS proxy that speaks h2c. Off: HTTP/1.1 only.
    http2: bool = False
    #: The URL admins use to reach this service (links in Slack messages).
    public_url: str = ""
    #: Largest ingest body accepted (413 beyond).
    max_body_bytes: int = 256 * 1024
    #: Most events in one batch (413 beyond).
    max_events_per_batch: int = 50
    #: Client timestamps further than this from server time are rejected.
    max_clock_skew_s: float = 24 * 60 * MINUTE_S
    #: On SIGTERM, in-flight requests get this long to finish.
    graceful_timeout_s: float = 5.0
    #: A connection must send complete request headers within this time, and
    #: an idle keep-alive connection is closed after it (or after
    #: TIPPEN_READ_TIMEOUT_S without a byte, if that is shorter).
    keep_alive_timeout_s: float = 20.0
    #: A single read from a client may take at most this long.
    read_timeout_s: float = 10.0
    #: A request body must arrive completely within this time (408 otherwise).
    body_timeout_s: float = 10.0
    #: Request line plus headers larger than this are refused.
    max_header_bytes: int = 16 * 1024
    #: Ingest requests in flight before new ones get 503.
    max_inflight_requests: int = 2000
    #: Ingest requests per second per API key (0: no limit), and the burst.
    ingest_rate_per_key: float = 5000.0
    #: Requests one API key may send at once before its rate applies.
    ingest_burst_per_key: float = 10_000.0
    #: Ingest requests per second per client address (0: no limit), and the burst.
    #: A browser sends one batch every few seconds; this leaves room for many
    #: users behind one NAT or proxy address.
    ingest_rate_per_address: float = 500.0
    #: Requests one address may send at once before its rate applies.
    ingest_burst_per_address: float = 1000.0
    #: Proxies whose X-Forwarded-For, X-Forwarded-Proto and Forwarded headers are
    #: believed: a number of hops (1: one proxy, such as nginx, in front), or their
    #: addresses and networks (10.0.0.0/8, 192.0.2.7). The client address is the
    #: right-most X-Forwarded-For entry they did not add; https they report makes the
    #: admin cookie Secure. Empty: headers ignored. Set it only behind proxies you run.
    trusted_proxies: TrustedProxies = TrustedProxies()
    #: Deprecated: true means TIPPEN_TRUSTED_PROXIES=1 (one proxy); ignored when that is set.
    trust_forwarded_for: bool = False

    # Admin dashboard
    #: Signs admin session cookies. Empty: one is generated once and kept in SQLite.
    secret_key: str = ""
    #: How long an admin login lasts.
    admin_session_s: float = 12 * 60 * MINUTE_S
    #: Bearer token for /metrics and /readyz's details (live users, recovery, backends).
    #: Empty: /metrics answers 401 and /readyz shows no details.
    operator_token: str = field(default="", repr=False)
    #: Login attempts per client address: a burst, then one per this many seconds.
    login_burst: int = 5
    #: Seconds per login attempt regained after the burst.
    login_refill_s: float = 6.0
    #: Messages a dashboard WebSocket may fall behind before it is resynced.
    hub_queue_messages: int = 512
    #: At most one update per user per this many seconds on a dashboard socket.
    hub_user_interval_s: float = 0.25
    #: While a user is flagged (an open support need, a call invitation waiting), their
    #: page asks for a call invitation this often (X-Tippen-Poll): at most this long
    #: until an invitation shows; each flagged page sends one request per this many seconds.
    invite_poll_s: float = 2.0

    # Live state
    #: Snapshot live state to this Redis (redis://host:6379/0); empty: to SQLite.
    redis_url: str = ""
    #: Prefix of the Redis keys tippen-rt writes.
    redis_prefix: str = "tippen"
    #: Changed live states are snapshotted at most this often.
    snapshot_interval_s: float = 2.0
    #: With no snapshot, users are rebuilt from this much recent history.
    replay_window_s: float = 30 * MINUTE_S

    # Slack alerts: a target for tenants that set none of their own
    #: Incoming webhook for tenants with no Slack target of their own.
    slack_webhook_url: str = field(default="", repr=False)
    #: Bot token (xoxb-...) for tenants with no Slack target of their own.
    slack_bot_token: str = field(default="", repr=False)
    #: Channel the bot token posts to.
    slack_channel: str = ""
    #: Slack's Web API root (tests point it at a local stand-in).
    slack_api_url: str = "https://slack.com/api/"
    #: A failing Slack delivery is retried this long, then marked failed.
    slack_retry_window_s: float = 15 * MINUTE_S
    #: Socket timeout of one Slack request, whole seconds.
    slack_timeout_s: int = 10

    # Logging and metrics
    #: DEBUG, INFO, WARNING or ERROR (also --log-level).
    log_level: str = "INFO"
    #: text (one line per record) or json (one JSON object per line: time, level, logger,
    #: message and the record's fields), for every log the process writes.
    log_format: str = "text"
    #: Log one line per HTTP request (logger tippen_rt.access): client address, method, path
    #: without its query string, status, bytes, duration. Never a body, query string, header
    #: value, API key, token or cookie.
    access_log: bool = False
    #: At most this many tenants are named in /metrics' live-user figures (those with the
    #: most live users); the others are summed up as tenant "other".
    metrics_tenants: int = 20

    # Demo mode
    #: Create a demo tenant, print how to log in, serve the sample app (also --demo).
    demo: bool = False

    extra: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_env(cls, env: Mapping[str, str], **overrides: Any) -> Settings:
        """Build settings from ``TIPPEN_*`` variables, then apply ``overrides``.

        ``overrides`` whose value is ``None`` are ignored, so CLI flags that the
        user did not pass fall through to the environment and the defaults.
        """
        hints = typing.get_type_hints(cls)
        values: dict[str, Any] = {}
        known = set()
        for f in fields(cls):
            if f.name == "extra":
                continue
            name = ENV_PREFIX + f.name.upper()
            known.add(name)
            if name in env:
                values[f.name] = _parse(name, env[name], hints[f.name])
        values["extra"] = {
            k: v for k, v in env.items() if k.startswith(ENV_PREFIX) and k not in known
        }
        for key, value in overrides.items():
            if value is not None:
                values[key] = (
                    _parse(f"--{key}", value, hints[key]) if isinstance(value, str) else value
                )
        return cls(**values)

    def problems(self) -> list[str]:
        """What is wrong with these settings, one line each (empty: nothing)."""
        out: list[str] = []
        for f in fields(self):
            value = getattr(self, f.name)
            env = ENV_PREFIX + f.name.upper()
            if f.name == "port" or isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            if f.name in _MAY_BE_ZERO and value < 0:
                out.append(f"{env}={value}: must be 0 or more")
            elif f.name not in _MAY_BE_ZERO and value <= 0:
                out.append(f"{env}={value}: must be more than 0")
        if not 0 <= self.port <= 65535:
            out.append(f"TIPPEN_PORT={self.port}: must be a port from 0 to 65535 (0: any free one)")
        if self.store_writer not in STORE_WRITERS:
            out.append(
                f"TIPPEN_STORE_WRITER={self.store_writer}: must be one of"
                f" {', '.join(STORE_WRITERS)}"
            )
        if self.log_level.upper() not in LOG_LEVELS:
            out.append(f"TIPPEN_LOG_LEVEL={self.log_level}: must be one of {', '.join(LOG_LEVELS)}")
        if self.log_format not in LOG_FORMATS:
            out.append(
                f"TIPPEN_LOG_FORMAT={self.log_format}: must be one of {', '.join(LOG_FORMATS)}"
            )
        for name, schemes in _URL_SCHEMES.items():
            url = getattr(self, name)
            if url and not url.startswith(schemes):
                env = ENV_PREFIX + name.upper()
                out.append(f"{env}={url}: must start with {' or '.join(schemes)}")
        if self.redis_url and importlib.util.find_spec("redis") is None:
            out.append(
                "TIPPEN_REDIS_URL is set but the redis package is not installed:"
                " pip install 'tippen-rt[redis]' (or unset it to snapshot to SQLite)"
            )
        return out

    def replace(self, **changes: Any) -> Settings:
        """A copy with ``changes`` applied."""
        return dataclasses.replace(self, **changes)

    @property
    def proxies(self) -> TrustedProxies:
        """The proxies to believe: TIPPEN_TRUSTED_PROXIES, else one hop for the
        deprecated TIPPEN_TRUST_FORWARDED_FOR=true."""
        if self.trusted_proxies or not self.trust_forwarded_for:
            return self.trusted_proxies
        return TrustedProxies(hops=1)


def _parse(name: str, raw: str, hint: Any) -> Any:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
    try:
        if hint is bool:
            lowered = raw.strip().lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off", ""):
                return False
            raise ValueError(raw)
        if hint is int:
            return int(raw)
        if hint is float:
            return float(raw)
        if hint is Path:
            return Path(raw)
        if hint is TrustedProxies:
            return TrustedProxies.parse(raw)
        return raw
    except ValueError as exc:
        if hint is TrustedProxies:
            raise SettingsError(f"{name}={raw!r}: {exc}") from None
        kind = getattr(hint, "__name__", str(hint))
        raise SettingsError(f"{name}={raw!r} is not a valid {kind}") from None


@dataclass(frozen=True, slots=True)
class SettingDoc:
    """One setting as operators see it."""

    env: str
    default: str
    doc: str


def describe_settings() -> list[SettingDoc]:
    """Every ``TIPPEN_*`` variable with its default and the ``#:`` comment above it."""
    import inspect

    source = inspect.getsource(Settings).splitlines()
    docs: dict[str, str] = {}
    pending: list[str] = []
    for line in source:
        stripped = line.strip()
        if stripped.startswith("#:"):
            pending.append(stripped[2:].strip())
            continue
        name = stripped.split(":", 1)[0]
        if pending and name.isidentifier():
            docs[name] = " ".join(pending)
        pending = []
    defaults = Settings()
    out = []
    for f in fields(Settings):
        if f.name == "extra":
            continue
        value = getattr(defaults, f.name)
        shown = (
            "(empty)"
            if str(value) == ""
            else str(value).lower()
            if isinstance(value, bool)
            else str(value)
        )
        out.append(SettingDoc(ENV_PREFIX + f.name.upper(), shown, docs.get(f.name, "")))
    return out


def markdown_settings_table(docs: list[SettingDoc]) -> str:
    """The configuration reference as a Markdown table."""
    lines = ["| variable | default | meaning |", "|---|---|---|"]
    lines += [f"| `{d.env}` | `{d.default}` | {d.doc} |" for d in docs]
    return "\n".join(lines)
