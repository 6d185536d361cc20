"""The daemon's pure parts without a daemon: tokens, identity, errors, waiting, redaction."""

from __future__ import annotations

import asyncio
import os
import socket
from pathlib import Path

import pytest

from migctl.client.http import error_from_body
from migctl.errors import (
    ALL_ERROR_CLASSES,
    AuthenticationError,
    InsufficientResourcesError,
    InUseError,
    MigctlError,
    NotFoundError,
    PermissionDeniedError,
    UsageError,
)
from migctl.leases import DeviceCandidate, DeviceRequest, Lease
from migctl.server.auth import (
    AdminGroup,
    Principal,
    Role,
    authenticate,
    bearer_token,
)
from migctl.server.config import default_socket_path, parse_host_port
from migctl.server.http_errors import in_request, status_for
from migctl.server.leasing import redact
from migctl.server.peercred import read_peercred
from migctl.server.statedb import StateDB
from migctl.server.tokens import TokenStore
from migctl.server.waiters import ShareWanted, WaitQueue


@pytest.fixture
def tokens(tmp_path: Path) -> TokenStore:
    return TokenStore(StateDB(tmp_path / "service.db"))


def test_a_token_verifies_until_revoked_and_only_with_its_secret(tokens: TokenStore) -> None:
    secret, info = tokens.create(name="ci", role="user", owner="alice", created_by="root")
    assert secret.startswith(f"migctl_{info.token_id}_")
    verified = tokens.verify(secret)
    assert verified is not None and verified.owner == "alice"
    assert tokens.get(info.token_id).last_used_at is not None
    assert tokens.verify(secret[:-1] + ("A" if secret[-1] != "A" else "B")) is None
    assert tokens.verify(f"migctl_{info.token_id}_") is None
    assert tokens.verify("migctl_ffffffffffff_whatever") is None
    assert tokens.verify("Bearer nonsense") is None
    tokens.revoke("ci", revoked_by="root")
    assert tokens.verify(secret) is None


def test_tokens_are_stored_hashed_and_the_file_is_private(
    tokens: TokenStore, tmp_path: Path
) -> None:
    secret, _ = tokens.create(name="ci", role="admin", owner="ci", created_by="root")
    raw = (tmp_path / "service.db").read_bytes() + (tmp_path / "service.db-wal").read_bytes()
    prefix, token_id, random_part = secret.split("_", 2)  # the random part may hold "_" itself
    assert (prefix, len(random_part)) == ("migctl", 43)
    assert token_id.encode() in raw  # the id is stored (to find the row)...
    assert random_part.encode() not in raw  # ...the secret is not
    assert (tmp_path / "service.db").stat().st_mode & 0o077 == 0


def test_token_names_roles_and_duplicates(tokens: TokenStore) -> None:
    tokens.create(name="ci", role="user", owner="ci", created_by="root")
    with pytest.raises(InUseError):
        tokens.create(name="ci", role="user", owner="ci", created_by="root")
    for bad_name in ("", "12", "with space", "x" * 65, "-dash"):
        with pytest.raises(MigctlError):
            tokens.create(name=bad_name, role="user", owner="x", created_by="root")
    with pytest.raises(MigctlError, match="role"):
        tokens.create(name="ok", role="root", owner="ok", created_by="root")
    tokens.revoke("ci", revoked_by="root")
    _again, info = tokens.create(name="ci", role="user", owner="ci", created_by="root")
    assert [t.active for t in tokens.list_tokens()] == [False, True]
    assert tokens.revoke(info.token_id, revoked_by="root").name == "ci"


def test_authentication_rules(tokens: TokenStore) -> None:
    admins = AdminGroup("no-such-group-here")
    secret, _ = tokens.create(name="ops", role="admin", owner="ops", created_by="root")
    with pytest.raises(AuthenticationError):
        authenticate(None, None, tokens, admins)
    assert authenticate(None, f"Bearer {secret}", tokens, admins).role == Role.ADMIN
    with pytest.raises(AuthenticationError):
        authenticate(None, "Bearer migctl_x_y", tokens, admins)
    with pytest.raises(AuthenticationError):
        bearer_token("Basic dXNlcjpwYXNz")
    assert bearer_token(None) is None and bearer_token("bearer  abc ") == "abc"


def test_admin_group_membership_by_primary_gid(tmp_path: Path) -> None:
    admins = AdminGroup("root")
    assert admins.contains(12345, 0)  # any uid whose gid is root's group
    assert not AdminGroup("no-such-group-here").contains(0, 0)


def test_peer_credentials_of_a_unix_socket() -> None:
    left, right = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    with left, right:
        peer = read_peercred(left)
        assert peer is not None
        assert (peer.pid, peer.uid, peer.gid) == (os.getpid(), os.geteuid(), os.getegid())
    with socket.socket() as tcp:
        assert read_peercred(tcp) is None
    assert read_peercred(None) is None


def test_every_error_kind_has_a_4xx_or_5xx_status_and_survives_the_round_trip() -> None:
    """What the daemon answers for each error class, read back by the client ``RemoteNode``
    uses: the same class, message, hint, context and exit code."""
    for error_class in (*ALL_ERROR_CLASSES, AuthenticationError):
        error = error_class("what went wrong", hint="how to fix", context={"gpu": 0})
        status = status_for(error)
        assert 400 <= status < 600
        back = error_from_body(error.to_dict(), status)
        assert type(back) is error_class
        assert (back.message, back.hint, back.context) == (error.message, error.hint, {"gpu": 0})
        assert back.exit_code == error.exit_code
    assert status_for(AuthenticationError("x")) == 401
    assert status_for(PermissionDeniedError("x")) == 403
    assert status_for(InsufficientResourcesError("x")) == 409
    assert status_for(UsageError("x")) == 400
    assert status_for(NotFoundError("x")) == 404


def test_a_request_that_asks_for_what_cannot_be_is_422_with_its_error_unchanged() -> None:
    for error in (NotFoundError("no GPU '9'"), InsufficientResourcesError("8 x 1g.10gb")):
        before = error.to_dict()
        assert in_request(error) is error and status_for(error) == 422
        assert error.to_dict() == before
    usage = UsageError("x")
    assert status_for(in_request(usage)) == 400


def test_host_port_and_socket_path_rules(tmp_path: Path) -> None:
    assert parse_host_port("127.0.0.1:8470") == ("127.0.0.1", 8470)
    assert parse_host_port("[::1]:80") == ("::1", 80)
    assert parse_host_port(":8470") == ("127.0.0.1", 8470)
    for bad in ("8470", "host:", "host:99999", "host:http"):
        with pytest.raises(UsageError):
            parse_host_port(bad)
    assert default_socket_path({"MIGCTL_SOCKET": "/x/s.sock"}, euid=0) == Path("/x/s.sock")
    assert default_socket_path({}, euid=0) == Path("/run/migctl/migctl.sock")
    assert default_socket_path({"XDG_RUNTIME_DIR": "/run/user/7"}, euid=7) == Path(
        "/run/user/7/migctl.sock"
    )


def _device(uuid: str, profile: str = "1g.10gb") -> DeviceCandidate:
    return DeviceCandidate(uuid, 0, 1, 0, profile, 9984, 16)


def test_a_freed_device_wakes_the_first_sleeping_matching_waiter_only() -> None:
    async def scenario() -> None:
        queue = WaitQueue()
        one_g = DeviceRequest(profile="1g.10gb")
        with (
            queue.waiting(DeviceRequest(profile="3g.40gb")) as big,
            queue.waiting(one_g) as first,
            queue.waiting(one_g) as second,
            queue.waiting(one_g) as newcomer,
        ):
            for waiter in (big, first, second):
                waiter.waiting = True
            assert queue.ahead(newcomer) and not queue.ahead(first)
            sleepers = [asyncio.create_task(queue.sleep(w, 30)) for w in (big, first, second)]
            await asyncio.sleep(0)
            queue.device_freed(_device("MIG-a"))
            await asyncio.wait_for(sleepers[1], 5)  # first woke; big and second sleep on
            assert not sleepers[0].done() and not sleepers[2].done()
            assert not first.woken.is_set()  # re-armed for its next sleep
            queue.device_freed(_device("MIG-b"))  # wakes second
            queue.device_freed(_device("MIG-c"))  # nobody sleeps for it: kept unclaimed
            await asyncio.wait_for(sleepers[2], 5)
            await asyncio.wait_for(queue.sleep(first, 30), 5)  # takes MIG-c, no sleep
            queue.wake_all()
            await asyncio.wait_for(sleepers[0], 5)
        assert len(queue) == 0

    asyncio.run(scenario())


def test_every_sleeping_soft_waiter_wakes_when_a_lease_ends_and_no_end_is_lost() -> None:
    async def scenario() -> None:
        queue = WaitQueue()
        anywhere = DeviceRequest()
        with (
            queue.waiting(DeviceRequest(profile="1g.10gb")) as mig,
            queue.waiting(anywhere, share=ShareWanted(50)) as half,
            queue.waiting(anywhere, share=ShareWanted(25, parent="0")) as quarter,
            queue.waiting(anywhere, share=ShareWanted(50)) as newcomer,
        ):
            for waiter in (mig, half, quarter):
                waiter.waiting = True
            assert queue.ahead(newcomer)  # the same share asked before it: it queues behind
            assert not queue.ahead(quarter)
            sleepers = [asyncio.create_task(queue.sleep(w, 30)) for w in (mig, half, quarter)]
            await asyncio.sleep(0)
            queue.device_freed(_device("SOFT-0a1b2c3d-1", "soft 25%"))
            await asyncio.wait_for(asyncio.gather(sleepers[1], sleepers[2]), 5)  # both woke
            assert not sleepers[0].done()  # a share freed is not a 1g.10gb MIG device
            queue.device_freed(_device("MIG-a", "3g.40gb"))  # ends while half is not asleep
            await asyncio.wait_for(queue.sleep(half, 30), 5)  # not lost: it tries again now
            again = asyncio.create_task(queue.sleep(half, 30))
            await asyncio.sleep(0.05)
            assert not again.done()  # nothing ended since its last try: it sleeps
            queue.wake_all()
            await asyncio.wait_for(asyncio.gather(again, sleepers[0]), 5)
        assert len(queue) == 0

    asyncio.run(scenario())


def _lease(lease_id: int, user: str, job: str) -> Lease:
    return Lease(
        lease_id, "MIG-a", 0, 1, 0, "1g.10gb", 9984, 16, user, 1000, "node1", job, 42,
        0.0, None, 0.0, None,
    )  # fmt: skip


def test_redaction_hides_other_users_but_not_the_viewers_own() -> None:
    alice = _lease(7, "alice", "secret-job")
    bob = Principal(name="bob", uid=1001, role=Role.USER, via="socket")
    error = InUseError(
        f"MIG-a is leased to {alice.describe_holder()}",
        hint="ask alice to release it",
        context={"holder": "alice", "uuid": "MIG-a"},
    )
    hidden = redact(error, [alice], bob)
    assert "alice" not in str(hidden) and "secret-job" not in str(hidden)
    assert "another user under lease 7" in hidden.message and hidden.context == {"uuid": "MIG-a"}
    own = redact(error, [alice], Principal(name="alice", uid=1000, role=Role.USER, via="socket"))
    assert "secret-job" in own.message
