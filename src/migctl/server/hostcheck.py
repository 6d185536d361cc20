"""Refuse DNS-rebound browser requests that would borrow a socket user's identity.

Why this module exists: the dashboard is reached on the Unix socket through ``ssh -L
8123:/run/migctl/migctl.sock`` (or a local proxy), and there the kernel names the caller: no
token. A web page open in the same browser could point its own domain at 127.0.0.1 (DNS
rebinding) and then call ``http://evil.example:8123/v1/...`` as a same-origin page, with the
user's identity. Such a request always carries the attacker's domain name in its ``Host``
header, while legitimate socket clients send ``migctl``, ``localhost`` or an IP address. So a
request identified by the socket peer (no token) whose ``Host`` is a dotted DNS name is refused.
Token requests are not affected (a rebinding page has no token).

Only ``migctl.server.deps`` imports this module.
"""

from __future__ import annotations

import ipaddress

from migctl.errors import PermissionDeniedError


def host_name(host_header: str) -> str:
    """The name part of a ``Host`` header: ``[::1]:8123`` -> ``::1``, ``a.b:80`` -> ``a.b``."""
    text = host_header.strip().lower()
    if text.startswith("["):
        return text[1:].partition("]")[0]
    return text.rpartition(":")[0] if text.count(":") == 1 else text


def is_rebindable(host_header: str | None) -> bool:
    """Whether ``host_header`` names a DNS domain (which a web page could rebind)."""
    if not host_header:
        return False
    name = host_name(host_header).rstrip(".")
    if "." not in name or name == "localhost" or name.endswith(".localhost"):
        return False  # "migctl", "localhost", "unix": not a domain someone can register
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return True
    return False


def check_socket_host(host_header: str | None) -> None:
    """Refuse (403) a socket-identified request that names a DNS domain as its host."""
    if is_rebindable(host_header):
        raise PermissionDeniedError(
            f"a request on the Unix socket without a token named the host {host_header!r}: "
            "refused, as a web page may have pointed its domain at a forwarded socket",
            hint="browse to http://localhost:PORT or http://127.0.0.1:PORT (e.g. through "
            "`ssh -L PORT:/run/migctl/migctl.sock`), or send a bearer token",
            context={"host": host_header},
        )
