"""CPU threads for one run: `threads=N` (top-level key) gives torch N intra-op threads and N
inter-op threads. `make sweep WORKERS=k` sets it to cores / k for each worker, so that k workers
on one machine share its cores instead of each starting one thread per core."""

from __future__ import annotations

import logging
import os

log = logging.getLogger(__name__)


def cores() -> int:
    """The cores this process may run on (its CPU affinity), not the machine's count."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def apply_threads(threads: int | None) -> None:
    if not threads:
        return
    import torch

    threads = int(threads)
    torch.set_num_threads(threads)
    if torch.get_num_interop_threads() != threads:
        try:
            torch.set_num_interop_threads(threads)
        except RuntimeError:
            # Settable once per process, before any inter-op work: a later run of a multirun
            # process keeps the first run's setting.
            log.debug("inter-op threads already fixed at %d", torch.get_num_interop_threads())
