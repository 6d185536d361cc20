"""Identity by the kernel: requests on the socket from processes running as other users.

Needs root (the test forks children that setuid to ``daemon`` (uid 1) and ``nobody`` (uid
65534, group nogroup, which the module daemon names as its admin group)); skipped otherwise.
"""

from __future__ import annotations

import grp
import os
import pwd
import stat

import httpx
import pytest

from tests.server.conftest import split
from tests.server.daemon import Daemon, as_user

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run clients as other uids")


def account(name: str) -> tuple[int, int]:
    entry = pwd.getpwnam(name)
    return entry.pw_uid, entry.pw_gid


def test_the_socket_is_open_to_every_local_user(daemon: Daemon) -> None:
    assert stat.S_IMODE(daemon.socket_path.stat().st_mode) == 0o666


def test_the_kernel_names_the_caller(daemon: Daemon) -> None:
    uid, gid = account("daemon")
    status, me = as_user(uid, gid, daemon.socket_path, "GET", "/v1/whoami")
    assert status == 200
    assert me == {"name": "daemon", "uid": uid, "role": "user", "via": "socket", "token_name": None}


def test_admin_group_members_are_admins(daemon: Daemon) -> None:
    uid, gid = account("nobody")
    assert gid == grp.getgrnam("nogroup").gr_gid
    status, me = as_user(uid, gid, daemon.socket_path, "GET", "/v1/whoami")
    assert status == 200 and me["role"] == "admin" and me["name"] == "nobody"
    status, tokens = as_user(uid, gid, daemon.socket_path, "GET", "/v1/tokens")
    assert status == 200 and isinstance(tokens, list)


def test_a_local_user_may_lease_but_not_apply(daemon: Daemon, root: httpx.Client) -> None:
    uid, gid = account("daemon")
    status, refused = as_user(uid, gid, daemon.socket_path, "POST", "/v1/apply", body=split(7))
    assert status == 403 and "admin role" in refused["message"]
    status, lease = as_user(
        uid,
        gid,
        daemon.socket_path,
        "POST",
        "/v1/leases",
        body={"profile": "1g.10gb", "job": "mine"},
    )
    assert status == 201, lease
    assert (lease["user"], lease["uid"], lease["job"]) == ("daemon", uid, "mine")
    nobody_uid, nobody_gid = account("nobody")
    status, seen = as_user(
        nobody_uid, nobody_gid, daemon.socket_path, "GET", f"/v1/leases/{lease['lease_id']}"
    )
    assert status == 200 and seen["user"] == "daemon"  # nobody is an admin here
    assert root.get(f"/v1/leases/{lease['lease_id']}").json()["uid"] == uid
    audit = root.get("/v1/audit?actor=daemon").json()
    assert {(e["path"], e["status"]) for e in audit} >= {("/v1/apply", 403), ("/v1/leases", 201)}


def test_a_lease_may_follow_only_the_callers_own_process(
    daemon: Daemon, root: httpx.Client
) -> None:
    uid, gid = account("daemon")
    mine = as_user(uid, gid, daemon.socket_path, "POST", "/v1/leases", body={"pid": os.getpid()})
    assert mine[0] == 403 and "another user" in mine[1]["message"]
    own = root.post("/v1/leases", json={"pid": os.getpid()})
    assert own.status_code == 201 and own.json()["pid"] == os.getpid()
