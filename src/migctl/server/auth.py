"""Who is asking, and may they: principals, roles, and the rules that decide them.

Why this module exists: one place decides identity and role for every request.

* On the Unix socket the kernel names the caller (SO_PEERCRED, see ``peercred``): uid 0 and
  members of the admin group (primary gid, or listed in the group, or ``getgrouplist``) are
  **admin**; every other local user is **user**. No password.
* A bearer token (``Authorization: Bearer migctl_...``) names a token's owner and role instead;
  on TCP it is the only way in. A token that is wrong or revoked is refused (401) even on the
  socket, so a client never silently runs with another identity than it asked for.
* No peer and no token: 401.

Admins may change layouts and MIG mode, manage tokens and read the audit log; users may lease,
release and run on devices and see the details of their own leases only.
Only ``migctl.server`` imports this module.
"""

from __future__ import annotations

import enum
import grp
import os
import pwd
import time
from dataclasses import dataclass

from migctl.errors import AuthenticationError, PermissionDeniedError
from migctl.server.peercred import PeerCred
from migctl.server.tokens import TokenInfo, TokenStore

GROUP_CACHE_S = 10.0
DAEMON_ACTOR = "migctl-daemon"


class Role(enum.StrEnum):
    ADMIN = "admin"
    USER = "user"


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller of one request."""

    name: str  # the user name leases are recorded under
    uid: int | None  # None for a token whose owner is no local user
    role: Role
    via: str  # "socket" or "token"
    token_id: str | None = None
    token_name: str | None = None
    pid: int | None = None  # the connecting process (socket only)

    @property
    def is_admin(self) -> bool:
        return self.role == Role.ADMIN

    def may_see(self, user: str | None) -> bool:
        """Whether this caller may see what belongs to ``user`` (a lease's holder, a waiting
        request's owner, a process's command line): their own, or anything as an admin."""
        return self.is_admin or (user is not None and user == self.name)

    def describe(self) -> str:
        """``alice (uid 1000, user, socket)`` / ``ci (token ci-bot, admin)``."""
        if self.via == "token":
            return f"{self.name} (token {self.token_name}, {self.role})"
        return f"{self.name} (uid {self.uid}, {self.role}, socket)"


def user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid{uid}"


def local_uid(name: str) -> int | None:
    try:
        return pwd.getpwnam(name).pw_uid
    except KeyError:
        return None


class AdminGroup:
    """Who a socket peer is: user name and admin-group membership, cached per (uid, gid).

    Both come from NSS (``/etc/passwd``, ``/etc/group``, or LDAP...), which costs a fraction of
    a millisecond per lookup; the daemon asks on every request, so answers are kept for
    ``cache_s`` seconds (a changed group membership takes effect within that time).
    """

    def __init__(self, name: str, *, cache_s: float = GROUP_CACHE_S) -> None:
        self.name = name
        self._cache_s = cache_s
        self._seen: dict[tuple[int, int], tuple[float, str, bool]] = {}

    def lookup(self, uid: int, gid: int) -> tuple[str, bool]:
        """(user name, is a member of the admin group)."""
        now = time.monotonic()
        cached = self._seen.get((uid, gid))
        if cached is not None and now - cached[0] < self._cache_s:
            return cached[1], cached[2]
        name, member = user_name(uid), _member(self.name, uid, gid)
        if len(self._seen) > 10_000:
            self._seen.clear()
        self._seen[(uid, gid)] = (now, name, member)
        return name, member

    def contains(self, uid: int, gid: int) -> bool:
        return self.lookup(uid, gid)[1]


def _member(group_name: str, uid: int, gid: int) -> bool:
    try:
        group = grp.getgrnam(group_name)
    except KeyError:
        return False
    if gid == group.gr_gid:
        return True
    try:
        account = pwd.getpwuid(uid)
    except KeyError:
        return False
    if account.pw_name in group.gr_mem:
        return True
    return group.gr_gid in os.getgrouplist(account.pw_name, account.pw_gid)


def from_peer(peer: PeerCred, admins: AdminGroup) -> Principal:
    name, member = admins.lookup(peer.uid, peer.gid)
    admin = peer.uid == 0 or member
    return Principal(
        name=name,
        uid=peer.uid,
        role=Role.ADMIN if admin else Role.USER,
        via="socket",
        pid=peer.pid,
    )


def from_token(info: TokenInfo) -> Principal:
    return Principal(
        name=info.owner,
        uid=local_uid(info.owner),
        role=Role(info.role),
        via="token",
        token_id=info.token_id,
        token_name=info.name,
    )


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer ...`` header; refuses other schemes."""
    if authorization is None:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthenticationError(
            "the Authorization header must read 'Bearer <token>'",
            hint="create a token with `migctl token create` (as an admin)",
        )
    return token.strip()


def authenticate(
    peer: PeerCred | None, authorization: str | None, tokens: TokenStore, admins: AdminGroup
) -> Principal:
    """The principal of a request, by the rules in the module docstring."""
    token = bearer_token(authorization)
    if token is not None:
        info = tokens.verify(token)
        if info is None:
            raise AuthenticationError(
                "the bearer token is not valid (unknown, mistyped or revoked)",
                hint="ask an admin for a token (`migctl token create`); see `migctl token list`",
            )
        return from_token(info)
    if peer is not None:
        return from_peer(peer, admins)
    raise AuthenticationError(
        "this request carries no credentials: TCP clients need a bearer token",
        hint="send 'Authorization: Bearer <token>' (an admin creates one with "
        "`migctl token create`), or connect through the Unix socket",
    )


def require_admin(principal: Principal, action: str, admin_group: str) -> None:
    """Refuse ``action`` (403) unless ``principal`` is an admin."""
    if principal.is_admin:
        return
    raise PermissionDeniedError(
        f"{action} needs the admin role; {principal.describe()} is a user",
        hint=f"admins are root, members of group {admin_group!r}, or holders of an admin token",
        context={"user": principal.name, "role": str(principal.role)},
    )
