"""Helpers for soft-device tests on a simulated node: open it, and end every MPS daemon after.

A node's MPS daemons are real processes (the simulated ``nvidia-cuda-mps-control``) under the
machine's own state directory; :func:`soft_node` quits each one at teardown whatever the test
left (forced, then SIGKILL), so no daemon outlives its test.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator
from pathlib import Path

from migctl.host import is_alive
from migctl.mps.control import DaemonStatus
from migctl.node.local import LocalNode
from migctl.node.open import open_node


def end_daemons(node: LocalNode) -> None:
    host = node.mps
    for paths in host.daemons():
        control = host.control(paths.parent_uuid)
        state = control.state()
        with contextlib.suppress(Exception):
            control.stop(force=True)
        if (
            state.pid is not None
            and state.status is DaemonStatus.RUNNING
            and is_alive(state.pid, None)
        ):
            with contextlib.suppress(ProcessLookupError):
                os.kill(state.pid, signal.SIGKILL)


@contextlib.contextmanager
def soft_node(machine: str, sim_dir: Path) -> Iterator[LocalNode]:
    """``machine`` on the simulator in ``sim_dir``; its MPS daemons end with the block."""
    node = open_node(sim=machine, sim_dir=sim_dir)
    try:
        yield node
    finally:
        end_daemons(node)
        node.close()
