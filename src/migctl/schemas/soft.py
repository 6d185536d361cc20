"""Soft devices on the wire: an MPS share of a GPU or MIG device, as inventories show it.

Why this module exists: ``migctl list/status -o json``, the daemon's inventory and the client
that reads it back show the same soft device: its parent, share, memory limit, holder (a
lease, redacted as leases are) and MPS server, and ``isolation: soft``. Only ``migctl.schemas``
modules and the front ends import it.
"""

from __future__ import annotations

from pydantic import Field

from migctl.reports import SoftDeviceView
from migctl.schemas.base import Wire
from migctl.schemas.leases import LeaseOut


class SoftDeviceOut(Wire):
    """A soft device: an MPS share of a GPU (MIG off) or of a MIG device."""

    uuid: str = Field(description="SOFT-...: what a soft lease names")
    parent_uuid: str = Field(description="the GPU or MIG device CUDA sees (CUDA_VISIBLE_DEVICES)")
    gpu_index: int
    parent_name: str
    share_percent: int
    memory_limit_mib: int
    sm_count: int | None = Field(description="the SMs a client should see (null: unknown)")
    lease: LeaseOut | None
    server: str = Field(description="the parent's MPS control daemon: running, stopped, stale")
    from_layout: bool = Field(description="a layout's share (stays when released)")
    isolation: str = Field(
        "soft", description="soft: no fault or memory-bandwidth isolation (see docs)"
    )

    @classmethod
    def of(cls, view: SoftDeviceView, lease: LeaseOut | None) -> SoftDeviceOut:
        return cls(
            uuid=view.uuid,
            parent_uuid=view.parent_uuid,
            gpu_index=view.gpu_index,
            parent_name=view.parent_name,
            share_percent=view.percent,
            memory_limit_mib=view.memory_limit_mib,
            sm_count=view.sm_count,
            lease=lease,
            server=view.server,
            from_layout=view.from_layout,
            isolation=view.isolation,
        )

    def value(self) -> SoftDeviceView:
        return SoftDeviceView(
            self.uuid,
            self.parent_uuid,
            self.gpu_index,
            self.parent_name,
            self.share_percent,
            self.memory_limit_mib,
            self.sm_count,
            None if self.lease is None else self.lease.value(),
            self.server,
            self.from_layout,
            self.isolation,
        )
