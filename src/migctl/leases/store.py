"""The lease store: grant MIG devices to owners so that no device is ever granted twice.

Why this module exists: several users and jobs share MIG devices; ``migctl run``, the lease CLI
verbs and the REST service all acquire and release through this class. It never touches
hardware: the caller passes the current MIG devices as :class:`DeviceCandidate` values.

How double grants are made impossible:

* every write (acquire, release, renew, reap) is one ``BEGIN IMMEDIATE`` transaction, so the
  write lock is held from the first read to the commit and two processes cannot both see a
  device as free; ``busy_timeout`` makes concurrent writers queue instead of failing;
* a UNIQUE partial index over active rows makes the database refuse a second active lease on
  one device even if the code were wrong;
* stale leases (TTL passed, holder process gone) are ended inside the same transaction, before
  choosing, so they never block and are never handed out twice;
* the devices to choose from are read inside that transaction too, and ``apply`` destroys a
  device only inside :meth:`LeaseStore.fenced` (the same write lock): a device is never
  destroyed while leased, and never leased once destroyed.

The file itself (see ``dbfile``) is created whole and private (0600; 0660 in a group-writable
directory), and an empty or schema-less file is refused, never silently started afresh: a
store that forgot its leases would let ``apply`` destroy devices in use.

A store keeps one connection per thread and process (see ``connections``): it is safe to share
across threads and to use after ``fork()``. Ended leases stay as history rows (``end_reason``),
so "who used what" can be shown. Anyone above the backends may import this module; it imports
only ``migctl.errors`` and the other ``migctl.leases`` modules.
"""

from __future__ import annotations

import logging
import socket
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from migctl.errors import InvalidInputError, NotFoundError
from migctl.leases import liveness, rows, soft
from migctl.leases.choose import choose_device
from migctl.leases.connections import ConnectionCache
from migctl.leases.dbfile import ensure_database_file
from migctl.leases.ownership import check_may_change, refuse_ended
from migctl.leases.schema import (
    MIGRATIONS,
    Migration,
    converted_errors,
    prepare_database,
    write_transaction,
)
from migctl.leases.soft_store import SoftLeases
from migctl.leases.types import DeviceCandidate, DeviceRequest, EndReason, Lease, LeaseOwner
from migctl.leases.waiting import Backoff, acquire_loop, check_request, check_ttl

logger = logging.getLogger(__name__)

Candidates = Sequence[DeviceCandidate] | Callable[[], Sequence[DeviceCandidate]]
CreateDevice = Callable[[DeviceRequest], DeviceCandidate | None]
REAPER = "migctl"  # ended_by for leases ended by reaping


class LeaseStore(SoftLeases):
    """A SQLite (WAL) lease store at ``path`` (``Settings.lease_db`` says which file).

    Soft devices (MPS shares) are granted by :meth:`acquire_soft` (``soft_store``).
    """

    def __init__(
        self,
        path: Path | str,
        *,
        busy_timeout_s: float = 30.0,
        clock: Callable[[], float] = time.time,
        hostname: str | None = None,
        holder_alive: rows.HolderAlive = liveness.holder_alive,
        migrations: Sequence[Migration] = MIGRATIONS,
        backoff: Backoff | None = None,
    ) -> None:
        self.path = Path(path)
        self.busy_timeout_s = busy_timeout_s
        self.hostname = hostname or socket.gethostname()
        self._clock = clock
        self._holder_alive = holder_alive
        self._backoff = backoff or Backoff()
        ensure_database_file(self.path, migrations, busy_timeout_s=busy_timeout_s)
        self._connections = ConnectionCache(self.path, busy_timeout_s=busy_timeout_s)
        with self._connection() as conn:
            self.schema_version = prepare_database(
                conn, migrations, busy_timeout_s=busy_timeout_s, path=self.path
            )

    # -- acquire ---------------------------------------------------------------------------

    def acquire(
        self,
        request: DeviceRequest,
        owner: LeaseOwner,
        candidates: Candidates,
        *,
        ttl_seconds: float | None = None,
        wait_seconds: float = 0.0,
        create_device: CreateDevice | None = None,
    ) -> Lease:
        """Lease one device matching ``request`` from ``candidates`` to ``owner``.

        ``candidates`` is the current MIG device list, or a function returning it: called inside
        each attempt's transaction, so a device destroyed meanwhile (``apply`` destroys under the
        same lock, see :meth:`fenced`) is never granted. With ``wait_seconds`` > 0 it polls with
        backoff until a device frees up. ``create_device(request)`` is called (outside any
        transaction, at most once) when nothing free matches; the device it returns is then
        leased if it still exists and is free.
        Raises NotFoundError, InUseError, InsufficientResourcesError, InvalidInputError (also
        for a job name that is not 1-128 printable characters: others see it in their views).
        """
        check_request(owner, ttl_seconds, wait_seconds)
        start_ticks = self._holder_start_ticks(owner)
        live = callable(candidates)
        inventory = candidates if callable(candidates) else (lambda: candidates)

        def attempt() -> Lease:
            return self._acquire_once(request, owner, inventory, ttl_seconds, start_ticks)

        def create() -> Lease | None:
            device = create_device(request) if create_device is not None else None
            if device is None:
                return None
            logger.info("leasing newly created MIG device %s", device.describe())

            def with_created() -> Sequence[DeviceCandidate]:
                current = list(inventory())
                if not live and all(d.uuid != device.uuid for d in current):
                    current.append(device)  # a fixed list cannot know the new device
                return current

            exact = DeviceRequest(uuid=device.uuid)
            return self._acquire_once(exact, owner, with_created, ttl_seconds, start_ticks)

        use_create = create_device is not None and request.uuid is None
        return acquire_loop(
            attempt,
            wait_seconds=wait_seconds,
            create=create if use_create else None,
            backoff=self._backoff,
        )

    def _acquire_once(
        self,
        request: DeviceRequest,
        owner: LeaseOwner,
        inventory: Callable[[], Sequence[DeviceCandidate]],
        ttl_seconds: float | None,
        start_ticks: int | None,
    ) -> Lease:
        with self._transaction() as conn:
            now = self._clock()
            active = self._reap_in(conn, now)
            candidates = inventory()  # under the lock: what exists now, not before the wait
            taken, reserved = soft.mig_view(conn, active)
            device = choose_device(request, candidates, taken, reserved)
            lease_id = rows.insert(
                conn,
                device,
                owner,
                now=now,
                ttl_seconds=ttl_seconds,
                holder_start_ticks=start_ticks,
            )
            stored = rows.fetch_one(conn, lease_id)
        assert stored is not None  # inserted in the same transaction
        logger.info("leased %s to %s as lease %d", device.describe(), owner.describe(), lease_id)
        return stored.lease

    def _holder_start_ticks(self, owner: LeaseOwner) -> int | None:
        """The holder's start time to record; refuses a holder PID that is not running."""
        if owner.pid is None or owner.host != self.hostname:
            return None
        if not self._holder_alive(owner.pid, None):
            raise InvalidInputError(
                f"holder process {owner.pid} is not running on {self.hostname}",
                hint="pass the PID of the live process that will use the device, or no PID",
                context={"pid": owner.pid},
            )
        return liveness.process_start_ticks(owner.pid)

    # -- release, renew ----------------------------------------------------------------------

    def release(self, target: int | str, *, user: str, admin: bool = False) -> Lease:
        """End the active lease ``target`` (a lease id, or a ``MIG-`` device uuid).

        Only its owner may release it, or anyone with ``admin=True`` (the lease then ends as
        ``revoked``). A lease still active in the store ends as released even when its holder
        just exited or its TTL just passed (``migctl run`` releases after its command ended;
        nobody else can have been granted the device meanwhile, since granting reaps first).
        Raises NotFoundError, PermissionDeniedError, InvalidStateError (ended).
        """
        with self._transaction() as conn:
            now = self._clock()
            lease = self._find_target(conn, target).lease
            refuse_ended(lease, action="release")
            check_may_change(lease, user=user, admin=admin, action="release")
            reason = EndReason.RELEASED if lease.user == user else EndReason.REVOKED
            rows.end(conn, lease.lease_id, now=now, reason=reason, ended_by=user)
            ended = rows.fetch_one(conn, lease.lease_id)
        assert ended is not None
        logger.info("lease %d on %s %s by %s", lease.lease_id, lease.uuid, reason.value, user)
        return ended.lease

    def renew(
        self,
        lease_id: int,
        *,
        ttl_seconds: float | None = None,
        user: str | None = None,
        admin: bool = False,
    ) -> Lease:
        """Heartbeat: push expiry to now + ``ttl_seconds`` (default: the lease's own TTL).

        With ``user`` given, only that lease's owner (or ``admin``) may renew it. An ended or
        already expired lease is refused (InvalidStateError): acquire a new one.
        """
        check_ttl(ttl_seconds)
        with self._transaction() as conn:
            now = self._clock()
            lease = self._current_target(conn, lease_id, now)
            refuse_ended(lease, action="renew")
            if user is not None:
                check_may_change(lease, user=user, admin=admin, action="renew")
            ttl = ttl_seconds if ttl_seconds is not None else lease.ttl_seconds
            expires_at = None if ttl is None else now + ttl
            conn.execute(
                "UPDATE leases SET heartbeat_at = ?, ttl_seconds = ?, expires_at = ? "
                "WHERE lease_id = ?",
                (now, ttl, expires_at, lease_id),
            )
            renewed = rows.fetch_one(conn, lease_id)
        assert renewed is not None
        return renewed.lease

    def set_ttl(self, lease_id: int, ttl_seconds: float | None) -> Lease:
        """Give an active lease ``ttl_seconds`` counted from its grant (None: no expiry).

        The daemon grants every lease with a short TTL and sets the one its client asked for
        once the answer has reached the client (``migctl.server.provisional``). An ended lease
        is returned unchanged.
        """
        check_ttl(ttl_seconds)
        with self._transaction() as conn:
            conn.execute(
                "UPDATE leases SET ttl_seconds = ?, expires_at = created_at + ? "
                "WHERE lease_id = ? AND ended_at IS NULL",
                (ttl_seconds, ttl_seconds, lease_id),
            )
            stored = rows.fetch_one(conn, lease_id)
        if stored is None:
            raise NotFoundError(f"no lease {lease_id}", context={"lease_id": lease_id})
        return stored.lease

    # -- reading ---------------------------------------------------------------------------

    def list_leases(
        self, *, active_only: bool = True, user: str | None = None, uuid: str | None = None
    ) -> list[Lease]:
        """Active leases sorted by GPU index, GI id, CI id; or all (history too) by lease id.

        ``user`` and ``uuid`` filter by owner and by device ("who used this device").
        """
        conditions = ["ended_at IS NULL"] if active_only else ["1"]
        params: list[object] = []
        for column, value in (("owner_user", user), ("device_uuid", uuid)):
            if value is not None:
                conditions.append(f"{column} = ?")
                params.append(value)
        order = "gpu_index, gi_id, ci_id, lease_id" if active_only else "lease_id"
        with self._transaction() as conn:
            self._reap_in(conn, self._clock())
            where = " AND ".join(conditions)
            found = rows.fetch(conn, f"WHERE {where} ORDER BY {order}", tuple(params))
        return [stored.lease for stored in found]

    def get(self, uuid: str) -> Lease | None:
        """The active lease on device ``uuid``, or None when it is free."""
        with self._transaction() as conn:
            self._reap_in(conn, self._clock())
            found = rows.fetch(conn, "WHERE ended_at IS NULL AND device_uuid = ?", (uuid,))
        return found[0].lease if found else None

    def get_lease(self, lease_id: int) -> Lease:
        """Lease ``lease_id``, active or ended; NotFoundError when there is none."""
        with self._transaction() as conn:
            return self._current_target(conn, lease_id, self._clock())

    @contextmanager
    def fenced(self, uuid: str, *, drop_soft_slots: bool = False) -> Iterator[Lease | None]:
        """Hold the write lock for a change to device ``uuid``; yields its active lease or None.

        No lease is granted while the block runs, and every acquire reads the devices that
        exist under this same lock: ``apply`` checks that a device is not leased and destroys
        it inside one block, so a device is never destroyed while leased, nor leased once
        destroyed. A MIG device that is the parent of an active soft lease yields that lease
        (it is leased too). With ``drop_soft_slots``, the soft devices a layout made on
        ``uuid`` are removed when the block ends (the device is gone with them), and soft leases
        still on it (a forced destroy) end as revoked. Stale leases are ended first. An
        exception in the block rolls back the reap.
        """
        with self._transaction() as conn:
            now = self._clock()
            active = [s.lease for s in self._reap_in(conn, now)]
            found = next((lease for lease in active if lease.uuid == uuid), None)
            on_it = [x for x in active if x.soft and x.parent_uuid == uuid]
            yield found or next(iter(on_it), None)
            if drop_soft_slots:
                soft.drop_parent(conn, uuid, on_it, now)

    def reap(self) -> list[Lease]:
        """End every stale lease now (TTL passed, holder gone); returns the leases it ended."""
        with self._transaction() as conn:
            now = self._clock()
            before = {s.lease.lease_id for s in rows.fetch_active(conn)}
            still = {s.lease.lease_id for s in self._reap_in(conn, now)}
            ended = [rows.fetch_one(conn, lease_id) for lease_id in sorted(before - still)]
        return [stored.lease for stored in ended if stored is not None]

    def prune_history(self, *, older_than_seconds: float) -> int:
        """Delete leases that ended more than ``older_than_seconds`` ago; returns how many."""
        with self._transaction() as conn:
            cutoff = self._clock() - older_than_seconds
            cursor = conn.execute(
                "DELETE FROM leases WHERE ended_at IS NOT NULL AND ended_at < ?", (cutoff,)
            )
            return cursor.rowcount

    # -- internals -------------------------------------------------------------------------

    def _now(self) -> float:
        return self._clock()

    def _reap_in(self, conn: sqlite3.Connection, now: float) -> list[rows.StoredLease]:
        """End stale leases inside the caller's transaction; returns the leases still active."""
        return [
            stored
            for stored in rows.fetch_active(conn)
            if not self._reap_if_stale(conn, stored, now)
        ]

    def _reap_if_stale(
        self, conn: sqlite3.Connection, stored: rows.StoredLease, now: float
    ) -> bool:
        """End ``stored`` if it is stale (TTL passed, holder gone); True when it ended now."""
        reason = rows.stale_reason(
            stored, now=now, hostname=self.hostname, holder_alive=self._holder_alive
        )
        if reason is None:
            return False
        rows.end(conn, stored.lease.lease_id, now=now, reason=reason, ended_by=REAPER)
        lease = stored.lease
        logger.info("lease %d on %s ended: %s", lease.lease_id, lease.uuid, reason.value)
        return True

    def _current_target(self, conn: sqlite3.Connection, target: int | str, now: float) -> Lease:
        """The lease ``target`` names, ended first if it is stale (only that one is checked)."""
        stored = self._find_target(conn, target)
        if stored.lease.active and self._reap_if_stale(conn, stored, now):
            stored = self._find_target(conn, stored.lease.lease_id)
        return stored.lease

    def _find_target(self, conn: sqlite3.Connection, target: int | str) -> rows.StoredLease:
        """A lease by id (int or digits), or the active/latest lease of a device uuid."""
        if isinstance(target, int) or target.isdigit():
            stored = rows.fetch_one(conn, int(target))
            if stored is not None:
                return stored
            raise NotFoundError(
                f"no lease {target}",
                hint="list leases with `migctl lease list --all`",
                context={"lease_id": int(target)},
            )
        found = rows.fetch(
            conn, "WHERE device_uuid = ? ORDER BY ended_at IS NULL DESC, lease_id DESC", (target,)
        )
        if found:
            return found[0]
        raise NotFoundError(
            f"no lease on device {target}",
            hint="list leases with `migctl lease list`",
            context={"uuid": target},
        )

    def close(self) -> None:
        """Close the calling thread's connection (others close when their threads end)."""
        self._connections.discard()

    def __enter__(self) -> LeaseStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        with converted_errors(self.path, self.busy_timeout_s):
            try:
                yield self._connections.get()
            except sqlite3.Error:
                self._connections.discard()  # start the next operation on a fresh connection
                raise

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with (
            self._connection() as conn,
            write_transaction(conn, busy_timeout_s=self.busy_timeout_s),
        ):
            yield conn
