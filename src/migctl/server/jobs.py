"""Long operations as jobs: persisted, run one at a time, and never lost across restarts.

Why this module exists: an apply can take seconds to minutes (MIG mode changes, many instances,
hooks), longer than an HTTP client should wait. ``POST /v1/apply`` creates a job row and
returns 202 with its id; one worker thread runs jobs in order; ``GET /v1/jobs/{id}`` shows its
status and result. Rows are committed before the job starts and after it ends, so a daemon that
dies mid-job finds it ``running`` at the next start and marks it ``interrupted`` (the engine's
journal, repaired at start, says what became of the GPUs).

Statuses: queued -> running -> succeeded | failed; queued/running -> interrupted (restart).
Only ``migctl.server`` imports this module.
"""

from __future__ import annotations

import enum
import json
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from migctl.errors import EXIT_INTERNAL, MigctlError, NotFoundError
from migctl.server.statedb import StateDB

log = logging.getLogger(__name__)


class JobStatus(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    INTERRUPTED = "interrupted"


@dataclass(frozen=True, slots=True)
class Job:
    job_id: int
    kind: str
    status: JobStatus
    requested_by: str
    request: dict[str, Any]
    created_at: float
    started_at: float | None
    finished_at: float | None
    message: str | None
    result: dict[str, Any] | None
    error: dict[str, Any] | None

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__}


@dataclass(frozen=True, slots=True)
class JobResult:
    """How a job's work ended."""

    status: JobStatus
    message: str
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None


def _loads(text: str | None) -> dict[str, Any] | None:
    return None if text is None else dict(json.loads(text))


def _dumps(value: dict[str, Any] | None) -> str | None:
    return None if value is None else json.dumps(value, sort_keys=True, default=str)


class JobStore:
    """The ``jobs`` table."""

    def __init__(self, db: StateDB) -> None:
        self._db = db

    def create(self, kind: str, request: dict[str, Any], requested_by: str) -> Job:
        with self._db.write() as conn:
            cursor = conn.execute(
                "INSERT INTO jobs (kind, status, requested_by, request, created_at)"
                " VALUES (?, 'queued', ?, ?, ?)",
                (kind, requested_by, _dumps(request), time.time()),
            )
            job_id = int(cursor.lastrowid or 0)
        return self.get(job_id)

    def start(self, job_id: int) -> None:
        with self._db.write() as conn:
            conn.execute(
                "UPDATE jobs SET status = 'running', started_at = ? WHERE job_id = ?",
                (time.time(), job_id),
            )

    def finish(self, job_id: int, outcome: JobResult) -> None:
        with self._db.write() as conn:
            conn.execute(
                "UPDATE jobs SET status = ?, finished_at = ?, message = ?, result = ?, error = ?"
                " WHERE job_id = ?",
                (
                    outcome.status.value,
                    time.time(),
                    outcome.message,
                    _dumps(outcome.result),
                    _dumps(outcome.error),
                    job_id,
                ),
            )

    def get(self, job_id: int) -> Job:
        rows = self._db.read("SELECT * FROM jobs WHERE job_id = ?", (job_id,))
        if not rows:
            raise NotFoundError(f"no job {job_id}", hint="list jobs with GET /v1/jobs")
        return _job(rows[0])

    def recent(
        self,
        *,
        limit: int = 50,
        status: JobStatus | None = None,
        kind: str | None = None,
        since: float | None = None,
    ) -> list[Job]:
        """Newest first; optionally only one status, one kind, or created at ``since`` or later."""
        conditions: list[str] = ["1"]
        params: list[object] = []
        for column, value in (("status", None if status is None else status.value), ("kind", kind)):
            if value is not None:
                conditions.append(f"{column} = ?")
                params.append(value)
        if since is not None:
            conditions.append("created_at >= ?")
            params.append(since)
        rows = self._db.read(
            f"SELECT * FROM jobs WHERE {' AND '.join(conditions)} ORDER BY job_id DESC LIMIT ?",
            (*params, limit),
        )
        return [_job(row) for row in rows]

    def count(self, status: JobStatus) -> int:
        return int(
            self._db.read("SELECT COUNT(*) FROM jobs WHERE status = ?", (status.value,))[0][0]
        )

    def interrupt_unfinished(self, message: str) -> list[int]:
        """Mark jobs a previous daemon left queued or running as interrupted; their ids."""
        with self._db.write() as conn:
            ids = [
                int(row[0])
                for row in conn.execute(
                    "SELECT job_id FROM jobs WHERE status IN ('queued', 'running') ORDER BY job_id"
                )
            ]
            conn.execute(
                "UPDATE jobs SET status = 'interrupted', finished_at = ?, message = ?"
                " WHERE status IN ('queued', 'running')",
                (time.time(), message),
            )
        return ids


def _job(row: Any) -> Job:
    return Job(
        job_id=row["job_id"],
        kind=row["kind"],
        status=JobStatus(row["status"]),
        requested_by=row["requested_by"],
        request=_loads(row["request"]) or {},
        created_at=row["created_at"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        message=row["message"],
        result=_loads(row["result"]),
        error=_loads(row["error"]),
    )


Work = Callable[[Job], JobResult]


class JobRunner:
    """Runs jobs in submission order on one worker thread, recording each step."""

    def __init__(self, store: JobStore) -> None:
        self.store = store
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="migctl-job")

    def submit(self, kind: str, request: dict[str, Any], requested_by: str, work: Work) -> Job:
        job = self.store.create(kind, request, requested_by)
        self._executor.submit(self.run, job, work)
        return job

    def run(self, job: Job, work: Work) -> Job:
        """Run ``work`` for ``job`` now, in this thread (startup jobs use this directly)."""
        self.store.start(job.job_id)
        try:
            outcome = work(job)
        except MigctlError as error:
            outcome = JobResult(JobStatus.FAILED, error.message, error=error.to_dict())
        except Exception as exc:
            log.exception("job %d (%s) failed with an internal error", job.job_id, job.kind)
            details: dict[str, Any] = {
                "error": "internal",
                "message": f"{type(exc).__name__}: {exc}",
                "hint": "see the daemon's log",
                "exit_code": EXIT_INTERNAL,
                "context": {},
            }
            outcome = JobResult(JobStatus.FAILED, f"internal error: {exc}", error=details)
        self.store.finish(job.job_id, outcome)
        log.info("job %d (%s): %s: %s", job.job_id, job.kind, outcome.status, outcome.message)
        return self.store.get(job.job_id)

    def shutdown(self) -> None:
        """Wait for the running job (a GPU change is never abandoned half-way)."""
        self._executor.shutdown(wait=True, cancel_futures=True)
