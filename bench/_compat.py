"""What lets a benchmark run against an older revision (``--at``, ``--baseline``)."""

from __future__ import annotations

import dataclasses

from tippen_rt.tenants import TenantSettings


def tenant_settings(**values: float) -> TenantSettings:
    """TenantSettings with the fields this revision has: an older one ignores
    what it does not know, as its service would with stored settings."""
    known = {f.name for f in dataclasses.fields(TenantSettings)}
    return TenantSettings(**{k: v for k, v in values.items() if k in known})  # type: ignore[arg-type]
