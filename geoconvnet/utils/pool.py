"""Worker processes for image work (hashing, checking, decoding): one pool of them, or this
process alone when one would do.

The processes come from a fork server, never from a fork of this process: a fork taken while
OpenCV's or BLAS's threads hold a lock hangs at its first call into them. Seen here twice:
after a pixel check of ``data dedup`` had run in a process, and in the test suite, where
``data filter``'s forked workers hung after earlier tests had used OpenCV in the same
process (2026-11-30)."""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor

import cv2
from threadpoolctl import threadpool_limits


def single_threaded() -> None:
    """Worker initializer: one thread each for BLAS and OpenCV. Their thread pools only add
    overhead on small images, and the processes already use every core (with them, hashing
    one frame took 6 ms instead of 1.6)."""
    threadpool_limits(1)
    cv2.setNumThreads(1)


class InProcess:
    """A pool of one: the work in this process (one worker, or too little to share)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def map(self, function, jobs, chunksize=1):
        return map(function, jobs)


def worker_pool(workers: int | None, jobs: int, preload: tuple[str, ...] = ()):
    """``workers`` processes (default: every core) from a fork server that has imported the
    modules in ``preload``, or this process alone when one would do (one worker, or fewer
    than 4 jobs)."""
    workers = workers or os.cpu_count() or 1
    if workers == 1 or jobs < 4:
        return InProcess()
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(list(preload))
    return ProcessPoolExecutor(min(workers, jobs), mp_context=context,
                               initializer=single_threaded)
