"""The process: one ``trio.run``, one root nursery, explicit start and stop order.

Start order: GC pause timing, signal watcher, loop-lag probe, EventStore
(opens and migrates SQLite), tenant directory, Feed, Notifier, Registry,
tenant watcher (settings changed by the CLI reach live users; the directory's
reload tells open dashboards through the Hub), the CallBoard (call invitations
waiting before a restart come back), recovery of every live user (snapshots,
then replay of newer events), snapshotter, summary writer, HTTP server.
Requests are accepted only after recovery.  Stop order on SIGTERM/SIGINT: the
HTTP server stops accepting and finishes in-flight requests (bounded by the
graceful timeout); the actors stop, every live state is snapshotted and every
summary written (a Slack message still on the wire stays pending and goes out
at the next start); then the EventStore commits what is queued, checkpoints the
WAL and closes.
"""

from __future__ import annotations

import logging
import signal
import socket
import sqlite3
from collections.abc import Callable

import trio

from .actors import Feed, Registry, Snapshotter, SummaryWriter, feed_channels, recover
from .alerts import Notifier
from .calls import CallBoard
from .clock import Clock
from .config import Settings
from .demo import demo_base_url, ensure_demo_tenant
from .http import AppServices, Hub, Probes, TenantDirectory, create_app, serve_http
from .observe import GcPauses, LoopLagProbe
from .persist import (
    EventStore,
    RetentionService,
    check_schema,
    database_lock,
    record_served_settings,
    snapshot_store,
)

log = logging.getLogger(__name__)


async def watch_signals(shutdown: trio.Event, force: Callable[[], None]) -> None:
    """Set ``shutdown`` on the first SIGTERM/SIGINT; call ``force`` on the second."""
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for signum in signals:
            if not shutdown.is_set():
                log.info("received %s: shutting down", signal.Signals(signum).name)
                shutdown.set()
            else:
                log.warning("second %s: stopping now", signal.Signals(signum).name)
                force()
                return


async def run_service(
    settings: Settings,
    *,
    shutdown: trio.Event | None = None,
    handle_signals: bool = True,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run the whole service until ``shutdown`` is set (or a signal arrives).

    Reports the bound URLs through ``task_status`` once requests are accepted.
    """
    shutdown = shutdown or trio.Event()
    # Before anything is opened: one process per database, not one from a newer
    # tippen-rt (older ones are migrated at start), and the port free.
    with database_lock(settings.db_path):
        check_schema(settings.db_path)
        check_port_free(settings.host, settings.port)
        gc_pauses = GcPauses()
        with gc_pauses.installed():
            await _run(settings, shutdown, handle_signals, task_status, gc_pauses)


class PortInUse(Exception):
    """The address to listen on is taken."""


def check_port_free(host: str, port: int) -> None:
    """Raise :class:`PortInUse` if ``host:port`` cannot be bound now (port 0: any)."""
    if port == 0:
        return
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise PortInUse(f"cannot listen on {host}:{port}: {exc.strerror}") from None


async def _run(
    settings: Settings,
    shutdown: trio.Event,
    handle_signals: bool,
    task_status: trio.TaskStatus[list[str]],
    gc_pauses: GcPauses,
) -> None:
    async with trio.open_nursery() as root:
        if handle_signals:
            root.start_soon(watch_signals, shutdown, root.cancel_scope.cancel)
        probes = Probes(loop_lag=await root.start(LoopLagProbe().run), gc_pauses=gc_pauses)

        async with trio.open_nursery() as storage:
            store = EventStore(
                settings.db_path,
                queue_jobs=settings.store_queue_jobs,
                max_rows_per_commit=settings.store_max_rows_per_commit,
                writer_process=settings.store_writer == "process",
            )
            await storage.start(store.run)
            clock = Clock()
            tenants = TenantDirectory(store, wall_s=clock.now)
            await tenants.reload()
            retention = await storage.start(RetentionService(store, clock).run)

            async with trio.open_nursery() as live:
                (triggers_send, triggers_recv), (changes_send, changes_recv) = feed_channels()
                feed = await live.start(Feed(triggers_recv, changes_recv).run)
                registry = Registry(clock, triggers_out=triggers_send, changes_out=changes_send)
                # Alerts before actors: every trigger, restored users' too, is recorded.
                notifier = Notifier.from_settings(settings, store, tenants, registry, clock)
                feed.subscribe_triggers(notifier.on_trigger)
                await live.start(notifier.run)
                await live.start(registry.run)
                await live.start(watch_tenants, tenants, registry)
                hub = await live.start(
                    Hub(
                        registry,
                        feed,
                        wall_ms=clock.now_ms,
                        notifier=notifier,
                        user_interval_s=settings.hub_user_interval_s,
                        queue_messages=settings.hub_queue_messages,
                    ).run
                )
                # Call invitations: their answers reach the alerts, then the dashboards.
                calls = CallBoard(store, clock)
                calls.subscribe_changes(notifier.call_changed)
                calls.subscribe(hub.call_changed)
                await live.start(calls.run)
                snapshots = snapshot_store(settings, store)
                # Watchers first, so they see what restored actors announce.
                snapshotter = Snapshotter(
                    registry, snapshots, clock, interval_s=settings.snapshot_interval_s
                )
                summaries = SummaryWriter(registry, store, clock)
                recovery = await recover(
                    registry,
                    store,
                    snapshots,
                    {t.id: t for t in tenants.all()},
                    clock,
                    replay_window_s=settings.replay_window_s,
                )
                await live.start(snapshotter.run)
                await live.start(summaries.run)
                app = create_app(
                    AppServices(
                        settings=settings,
                        store=store,
                        tenants=tenants,
                        sink=registry,
                        wall_ms=clock.now_ms,
                        registry=registry,
                        feed=feed,
                        hub=hub,
                        snapshots=snapshots,
                        snapshotter=snapshotter,
                        recovery=recovery,
                        notifier=notifier,
                        probes=probes,
                        calls=calls,
                    )
                )

                async with trio.open_nursery() as http:
                    binds = await http.start(serve_http, app, settings, shutdown)
                    # Open dashboards are told at once that the service is going
                    # (close 1001), so their pages reconnect to the next process.
                    http.start_soon(_close_dashboards, shutdown, hub)
                    if settings.demo:
                        base_url = await _start_demo(store, tenants, binds[0], settings.public_url)
                        # Slack messages link to the dashboard the demo runs.
                        notifier.public_url = notifier.public_url or base_url
                    # For `tippen-rt slack test`, run from another shell.
                    public_url, api_url = notifier.public_url, settings.slack_api_url
                    await store.write(
                        lambda conn: record_served_settings(conn, public_url, api_url)
                    )
                    log.info("tippen-rt listening on %s", ", ".join(binds))
                    task_status.started(binds)
                # serve_http has returned: no request is in flight any more.
                # Stop the actors; the snapshotter writes every live state and
                # the summary writer flushes on their way out.
                live.cancel_scope.cancel()
            # Nothing else writes now: the store takes its last writes and closes.
            retention.stop()
            await store.close()

        root.cancel_scope.cancel()
    log.info("tippen-rt stopped")


#: How often the service reads the tenants table again.  ``tippen-rt tenant set``
#: writes it from another process, and SQLite tells no other process, so a
#: change (a threshold, a trigger turned off) reaches live users within this.
TENANT_RELOAD_S = 5.0


async def watch_tenants(
    tenants: TenantDirectory,
    registry: Registry,
    *,
    interval_s: float = TENANT_RELOAD_S,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Reload the tenants every ``interval_s``; give the live actors of a tenant
    whose settings changed the new ones (they run their rules with them at once).

    The reload itself shows a change on the tenant's open dashboards
    (``TenantDirectory.on_settings_change``, wired in ``AppServices``)."""
    known = {t.id: t.settings for t in tenants.all()}
    task_status.started()
    while True:
        await trio.sleep(interval_s)
        try:
            await tenants.reload()
        except (ValueError, sqlite3.Error):  # a bad row, a busy file: keep what we have
            log.exception("reading the tenants again failed; retrying in %g s", interval_s)
            continue
        now_known = {t.id: t.settings for t in tenants.all()}
        for tenant_id, settings in now_known.items():
            if known.get(tenant_id, settings) != settings:
                log.info("tenant %d: settings changed; live users follow them now", tenant_id)
                await registry.settings_changed(tenant_id, settings)
        known = now_known


async def _close_dashboards(shutdown: trio.Event, hub: Hub) -> None:
    await shutdown.wait()
    hub.close()


async def _start_demo(
    store: EventStore, tenants: TenantDirectory, bound_url: str, public_url: str
) -> str:
    access = await store.write(lambda conn: ensure_demo_tenant(conn, bound_url, public_url))
    await tenants.reload()
    base_url = demo_base_url(bound_url, public_url)
    print(
        "\n"
        f"  tippen-rt demo is running at {base_url}\n"
        f"  dashboard:   {base_url}/user-activity\n"
        f"  login token: {access.admin_token}\n"
        f"  sample app:  {base_url}/demo/app   (how to make each support trigger fire)\n"
        f"  API key:     {access.tenant.api_key}\n",
        flush=True,
    )
    return base_url
