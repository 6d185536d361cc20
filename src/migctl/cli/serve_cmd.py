"""``migctl serve``: run the daemon that owns this machine's GPUs (see ``migctl.server``).

Why this exists: on a shared GPU server one privileged process changes MIG layouts and grants
leases; everyone else asks it over a Unix socket (identified by the kernel) or over TCP with a
token. This verb reads the daemon's paths (the session's Settings, read here at the edge, and
the flags) and runs the daemon, which opens its own LocalNode (``--sim`` for a simulated
machine), until SIGTERM/SIGINT. Run it from systemd: ``deploy/migctl.service``. With
``--repartition on`` the daemon reshapes idle MIG instances for waiting lease requests, within
the limits given here (docs/service.md, "Demand-driven repartitioning").
"""

from __future__ import annotations

import enum
import logging
import os
from pathlib import Path
from typing import Annotated

import typer

from migctl.cli.session import session


class RepartitionMode(enum.StrEnum):
    OFF = "off"
    ON = "on"


def serve(
    socket_path: Annotated[
        Path | None,
        typer.Option(
            "--socket",
            envvar="MIGCTL_SOCKET",
            help="Unix socket (default: /run/migctl/migctl.sock as root, else "
            "$XDG_RUNTIME_DIR/migctl.sock).",
        ),
    ] = None,
    tcp: Annotated[
        str | None,
        typer.Option(
            "--tcp", help="Also listen on HOST:PORT (bearer tokens only), e.g. 127.0.0.1:8470."
        ),
    ] = None,
    admin_group: Annotated[
        str | None,
        typer.Option(
            "--admin-group",
            envvar="MIGCTL_ADMIN_GROUP",
            help="Its members are admins (default migctl-admin).",
        ),
    ] = None,
    state_dir: Annotated[
        Path | None,
        typer.Option(
            "--state-dir",
            envvar="MIGCTL_STATE_DIR",
            help="Daemon state (default /var/lib/migctl as root).",
        ),
    ] = None,
    lease_db: Annotated[
        Path | None,
        typer.Option("--lease-db", envvar="MIGCTL_LEASE_DB", help="Lease database file."),
    ] = None,
    layout: Annotated[
        Path | None,
        typer.Option(
            "--layout", help="Initial desired layout file (used when none is remembered)."
        ),
    ] = None,
    config_name: Annotated[
        str | None, typer.Option("--config", "-c", help="Which named layout in --layout.")
    ] = None,
    access_log: Annotated[bool, typer.Option("--access-log", help="Log every request.")] = False,
    metrics_public: Annotated[
        bool,
        typer.Option(
            "--metrics-public",
            envvar="MIGCTL_METRICS_PUBLIC",
            help="Anonymous TCP clients may read /metrics (holders shown as '(another user)').",
        ),
    ] = False,
    repartition: Annotated[
        RepartitionMode,
        typer.Option(
            "--repartition",
            envvar="MIGCTL_REPARTITION",
            help="on: reshape idle MIG instances so that waiting lease requests fit.",
            case_sensitive=False,
        ),
    ] = RepartitionMode.OFF,
    max_reconfig_per_hour: Annotated[
        str,
        typer.Option(
            "--max-reconfig-per-hour",
            envvar="MIGCTL_MAX_RECONFIG_PER_HOUR",
            help="Reshapes allowed in any hour (a number, or 'unlimited').",
        ),
    ] = "12",
    min_idle_seconds: Annotated[
        str,
        typer.Option(
            "--min-idle-seconds",
            envvar="MIGCTL_MIN_IDLE_SECONDS",
            help="An instance may be reshaped only after being idle this long.",
        ),
    ] = "300",
    aging_seconds: Annotated[
        str,
        typer.Option(
            "--aging-seconds",
            envvar="MIGCTL_AGING_SECONDS",
            help="A waiting request gains one priority level per this many seconds ('off').",
        ),
    ] = "600",
    reserve_after_seconds: Annotated[
        str,
        typer.Option(
            "--reserve-after-seconds",
            envvar="MIGCTL_RESERVE_AFTER_SECONDS",
            help="The oldest request reserves a GPU after waiting this long ('off').",
        ),
    ] = "300",
    rate_limit: Annotated[
        str,
        typer.Option(
            "--rate-limit",
            envvar="MIGCTL_RATE_LIMIT",
            help="Requests per second per user, RATE[:BURST] (e.g. 10:100), or 'unlimited'.",
        ),
    ] = "10:100",
    admin_rate_limit: Annotated[
        str,
        typer.Option(
            "--admin-rate-limit",
            envvar="MIGCTL_ADMIN_RATE_LIMIT",
            help="The same per admin (root, --admin-group, admin tokens).",
        ),
    ] = "unlimited",
    header_timeout: Annotated[
        float,
        typer.Option(
            "--header-timeout",
            envvar="MIGCTL_HEADER_TIMEOUT",
            min=0.1,
            help="Seconds a request's head may take to arrive (from the connection's start).",
        ),
    ] = 10.0,
    body_timeout: Annotated[
        float,
        typer.Option(
            "--body-timeout",
            envvar="MIGCTL_BODY_TIMEOUT",
            min=0.1,
            help="Seconds a request's body may take to arrive after its head.",
        ),
    ] = 30.0,
    max_user_connections: Annotated[
        int,
        typer.Option(
            "--max-user-connections",
            envvar="MIGCTL_MAX_USER_CONNECTIONS",
            min=1,
            help="Open socket connections per non-admin user.",
        ),
    ] = 64,
    max_connections: Annotated[
        int,
        typer.Option(
            "--max-connections",
            envvar="MIGCTL_MAX_CONNECTIONS",
            min=1,
            help="Open socket connections of all non-admin users together.",
        ),
    ] = 1024,
    max_tcp_connections: Annotated[
        int,
        typer.Option(
            "--max-tcp-connections",
            envvar="MIGCTL_MAX_TCP_CONNECTIONS",
            min=1,
            help="Open TCP connections (a budget of their own).",
        ),
    ] = 256,
    admin_connections: Annotated[
        int,
        typer.Option(
            "--admin-connections",
            envvar="MIGCTL_ADMIN_CONNECTIONS",
            min=1,
            help="Open socket connections of admins (no user or TCP client can take these).",
        ),
    ] = 128,
    audit_max_rows: Annotated[
        str,
        typer.Option(
            "--audit-max-rows",
            envvar="MIGCTL_AUDIT_MAX_ROWS",
            help="The audit log keeps this many newest rows ('unlimited').",
        ),
    ] = "100000",
    audit_max_age_days: Annotated[
        str,
        typer.Option(
            "--audit-max-age-days",
            envvar="MIGCTL_AUDIT_MAX_AGE_DAYS",
            help="... and drops rows older than this many days ('unlimited').",
        ),
    ] = "90",
) -> None:
    """Run the migctl daemon: REST API on a Unix socket (and optionally TCP) until stopped."""
    from migctl.extras import needed

    with needed("migctl serve", extra="server"):
        from migctl.server.config import (
            DEFAULT_ADMIN_GROUP,
            ConnectionLimits,
            ServiceConfig,
            audit_retention,
            parse_host_port,
            parse_rate,
            repartition_policy,
        )
        from migctl.server.run import serve as run_daemon

    current = session()
    current.local_only("migctl serve owns the GPUs itself")
    current.use_lease_db(lease_db)
    if current.verbose == 0:
        logging.getLogger().setLevel(logging.INFO)
    retention = audit_retention(audit_max_rows, audit_max_age_days)
    settings = current.settings
    if lease_db is not None:
        settings = settings.replace(lease_db=lease_db)
    if state_dir is not None:  # the daemon's database and, on real GPUs, the apply journal
        settings = settings.replace(state_dir=state_dir)
    config = ServiceConfig(
        socket_path=socket_path or _default_socket(),
        tcp=None if tcp is None else parse_host_port(tcp),
        admin_group=admin_group or DEFAULT_ADMIN_GROUP,
        state_dir=settings.state_dir,
        notify_socket=os.environ.get("NOTIFY_SOCKET"),
        metrics_public=metrics_public,
        repartition=repartition_policy(
            repartition.value,
            max_reconfig_per_hour=max_reconfig_per_hour,
            min_idle_seconds=min_idle_seconds,
            aging_seconds=aging_seconds,
            reserve_after_seconds=reserve_after_seconds,
        ),
        connections=ConnectionLimits(
            header_timeout_s=header_timeout,
            body_timeout_s=body_timeout,
            per_user=max_user_connections,
            users=max_connections,
            tcp=max_tcp_connections,
            admins=admin_connections,
        ),
        rate_limit=parse_rate(rate_limit, "--rate-limit"),
        admin_rate_limit=parse_rate(admin_rate_limit, "--admin-rate-limit"),
        audit_max_rows=retention[0],
        audit_max_age_s=retention[1],
    )
    initial = None
    if layout is not None:
        from migctl.schemas.layouts import LayoutTarget

        initial = LayoutTarget.from_file(layout, config_name)
    run_daemon(config, settings, access_log=access_log, initial_layout=initial)


def _default_socket() -> Path:
    from migctl.client.discovery import effective_uid, serve_socket

    return serve_socket(session().settings, os.environ, effective_uid())


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
