"""``migctl token create|list|revoke``: API tokens for the daemon's TCP listener and scripts.

Why this exists: TCP clients authenticate with bearer tokens only, and an admin must be able to
hand one out, see who has which, and cut one off at once. Run as the daemon's owner (root) the
verbs work directly on the daemon's state database (even while it runs, or before its first
start); otherwise, or when ``--url`` / ``MIGCTL_URL`` names a daemon, they go through the API,
which needs the admin role (``--via api`` forces that, ``--via direct`` the former). A new token
is printed once and never stored in clear.
"""

from __future__ import annotations

import enum
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from migctl.cli.output import emit, print_rows, table
from migctl.cli.session import session
from migctl.errors import UsageError
from migctl.extras import needed

if TYPE_CHECKING:
    from migctl.client.http import DaemonClient
    from migctl.schemas.admin import TokenCreatedOut, TokenListOut, TokenRevokedOut
    from migctl.server.tokens import TokenStore

app = typer.Typer(help="API tokens of the migctl daemon (admins).", no_args_is_help=True)


class Via(enum.StrEnum):
    AUTO = "auto"
    DIRECT = "direct"
    API = "api"


ViaOption = Annotated[
    Via,
    typer.Option(
        "--via",
        help="auto (direct when you may write the state database, or create it), direct or api.",
    ),
]
StateDirOption = Annotated[
    Path | None,
    typer.Option("--state-dir", envvar="MIGCTL_STATE_DIR", help="The daemon's state directory."),
]
SocketOption = Annotated[
    Path | None, typer.Option("--socket", envvar="MIGCTL_SOCKET", help="The daemon's Unix socket.")
]
UrlOption = Annotated[
    str | None,
    typer.Option(
        "--url",
        envvar="MIGCTL_URL",
        help="The daemon: unix:///path.sock, or http://host:port (with --token).",
    ),
]
TokenOption = Annotated[
    str | None, typer.Option("--token", envvar="MIGCTL_TOKEN", help="An admin token (with --url).")
]


def _state_db(state_dir: Path | None) -> Path:
    with needed("migctl token", extra="server"):
        from migctl.server.config import STATE_DB_NAME

    return (state_dir or session().settings.state_dir) / STATE_DB_NAME


def _direct(via: Via, state_dir: Path | None, url: str | None) -> Path | None:
    """The state database to use directly, or None to go through the API."""
    path = _state_db(state_dir)
    if via == Via.API or (via == Via.AUTO and url is not None):
        return None
    usable = os.access(path, os.R_OK | os.W_OK) if path.exists() else _creatable(path)
    if via == Via.DIRECT or (via == Via.AUTO and usable):
        if not usable and via == Via.DIRECT and path.exists():
            raise UsageError(f"cannot write {path}", hint="run as root, or use --via api")
        return path
    return None


def _creatable(path: Path) -> bool:
    """No database yet (before the daemon's first start): direct if we may create it."""
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return os.access(folder, os.W_OK | os.X_OK)


def _store(path: Path) -> TokenStore:
    with needed("migctl token", extra="server"):
        from migctl.server.statedb import StateDB
        from migctl.server.tokens import TokenStore

    return TokenStore(StateDB(path))


def _me() -> str:
    with needed("migctl token", extra="server"):
        from migctl.server.auth import user_name

    return user_name(os.geteuid())


def _audit_direct(path: Path, action: str, target: str, **detail: object) -> None:
    with needed("migctl token", extra="server"):
        from migctl.server.audit import AuditLog
        from migctl.server.statedb import StateDB

    AuditLog(StateDB(path)).record(
        actor=_me(),
        role="admin",
        via="direct",
        method="CLI",
        path=f"migctl token {action}",
        action=f"token {action}",
        target=target,
        status=200,
        detail=dict(detail),
    )


def _api(socket_path: Path | None, url: str | None, token: str | None) -> DaemonClient:
    """The daemon's API: ``--url``, ``--socket``, else the socket clients find it on."""
    import os

    with needed("migctl token", extra="server"):
        from migctl.client.discovery import client_socket, effective_uid
        from migctl.client.http import DaemonClient

    if url is None and socket_path is None:
        socket_path = client_socket(session().settings, os.environ, effective_uid())
    return DaemonClient(url=url, socket_path=socket_path, token=token)


@app.command("create")
def create(
    name: Annotated[
        str, typer.Option("--name", help="A name to refer to it by (unique among active tokens).")
    ],
    role: Annotated[str, typer.Option("--role", help="user or admin.")] = "user",
    user: Annotated[
        str | None, typer.Option("--user", help="Lease owner (default: the name).")
    ] = None,
    via: ViaOption = Via.AUTO,
    state_dir: StateDirOption = None,
    socket_path: SocketOption = None,
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """Create a token and print it once (store it now: it cannot be shown again)."""
    if role not in {"user", "admin"}:
        raise UsageError(f"--role {role!r}: choose user or admin")
    path = _direct(via, state_dir, url)
    if path is not None:
        secret, info = _store(path).create(
            name=name, role=role, owner=user or name, created_by=_me()
        )
        _audit_direct(path, "create", name, role=role, owner=info.owner, token_id=info.token_id)
        data: dict[str, Any] = {"token": secret, "info": info.to_dict()}
    else:
        with _api(socket_path, url, token) as client:
            body = {"name": name, "role": role, "user": user}
            data = client.request("POST", "/v1/tokens", body=body)

    def render() -> None:
        info = data["info"]
        session().console.print(
            f"token {info['name']} (id {info['token_id']}, role {info['role']}, owner {info['owner']}):"
        )
        session().console.print(data["token"], markup=False)
        session().err.print("store it now: it is not shown again")

    def document() -> TokenCreatedOut:
        from migctl.schemas.admin import TokenCreatedOut

        return TokenCreatedOut.model_validate(data)

    emit("TokenCreated", document, render)


@app.command("list")
def list_tokens(
    via: ViaOption = Via.AUTO,
    state_dir: StateDirOption = None,
    socket_path: SocketOption = None,
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """Every token: name, id, role, owner, created, last used, revoked (never secrets)."""
    path = _direct(via, state_dir, url)
    if path is not None:
        tokens = [t.to_dict() for t in _store(path).list_tokens()]
    else:
        with _api(socket_path, url, token) as client:
            tokens = list(client.request("GET", "/v1/tokens"))

    def render() -> None:
        from migctl.leases.choose import format_time

        rows = table("Name", "ID", "Role", "Owner", "Created", "Last used", "State")
        for t in tokens:
            used = format_time(t["last_used_at"]) if t["last_used_at"] else "never"
            state = "active" if t["active"] else f"revoked {format_time(t['revoked_at'])}"
            rows.add_row(
                t["name"],
                t["token_id"],
                t["role"],
                t["owner"],
                format_time(t["created_at"]),
                used,
                state,
            )
        print_rows(rows)

    def document() -> TokenListOut:
        from migctl.schemas.admin import TokenListOut

        return TokenListOut.model_validate({"tokens": tokens})

    emit("TokenList", document, render)


@app.command("revoke")
def revoke(
    target: Annotated[str, typer.Argument(help="The token's name or id.")],
    via: ViaOption = Via.AUTO,
    state_dir: StateDirOption = None,
    socket_path: SocketOption = None,
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """Revoke a token: refused from its very next request on."""
    path = _direct(via, state_dir, url)
    if path is not None:
        info = _store(path).revoke(target, revoked_by=_me()).to_dict()
        _audit_direct(path, "revoke", target, token_id=info["token_id"])
    else:
        with _api(socket_path, url, token) as client:
            info = client.request("DELETE", f"/v1/tokens/{target}")
    emit(
        "TokenRevoked",
        lambda: _revoked(info),
        lambda: session().console.print(f"revoked token {info['name']} (id {info['token_id']})"),
    )


def _revoked(info: dict[str, Any]) -> TokenRevokedOut:
    from migctl.schemas.admin import TokenRevokedOut

    return TokenRevokedOut.model_validate({"info": info})
