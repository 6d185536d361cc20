"""``open_node`` and ``connect``: the two ways to get a Node.

Why this module exists: Python users, the CLI, the daemon and the fleet start from here.
``open_node`` works on this host's GPUs (real NVML, or a simulated machine with ``sim=``);
``connect`` reaches a migctl daemon over its Unix socket or TCP. Settings not given are read
from the environment once, here (:meth:`Settings.from_env`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from migctl.settings import Settings

if TYPE_CHECKING:
    from migctl.catalog import Catalog
    from migctl.node.local import LocalNode
    from migctl.node.remote import RemoteNode


def open_node(
    sim: str | None = None,
    *,
    read_only: bool | None = None,
    settings: Settings | None = None,
    sim_dir: Path | str | None = None,
    catalog: Catalog | None = None,
) -> LocalNode:
    """This host's GPUs, or the simulated machine ``sim`` (a name from ``migctl sim machines``
    or a machine file).

    >>> node = open_node(sim="dgx-h100", sim_dir=tmp)          # doctest: +SKIP
    >>> node.apply(SplitTarget(n=7), gpus=[0]).executed          # doctest: +SKIP
    """
    from migctl.node.local import open_local

    overrides: dict[str, object] = {}
    if sim is not None:
        overrides["sim"] = sim
    if read_only is not None:
        overrides["read_only"] = read_only
    if sim_dir is not None:
        overrides["sim_dir"] = Path(sim_dir)
    if settings is None:
        settings = Settings.from_env(overrides=overrides)
    elif overrides:
        settings = settings.replace(**overrides)
    return open_local(settings, catalog)


def connect(
    url: str | None = None,
    *,
    socket: Path | str | None = None,
    token: str | None = None,
    settings: Settings | None = None,
    timeout_s: float = 60.0,
    catalog: Catalog | None = None,
) -> RemoteNode:
    """A migctl daemon: ``url`` is ``unix:///run/migctl/migctl.sock`` or ``http://host:port``
    (with ``token``); ``socket`` a socket path. Default: the settings' socket."""
    from migctl.client.http import DaemonClient
    from migctl.node.remote import RemoteNode

    settings = settings or Settings.from_env()
    client = DaemonClient(
        url=url or (None if socket is not None else settings.url),
        socket_path=Path(socket) if socket is not None else settings.socket,
        token=token if token is not None else settings.token,
        timeout_s=timeout_s,
    )
    return RemoteNode(client, catalog=catalog, catalog_files=settings.catalog_files)
