"""One file at a time, in threads: the driver's one-off passes over a data set's files (checking
every image, converting DICOMs) are mostly decoding and compressing, which release the GIL."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


def in_threads(work: Callable[[Item], Result], items: Sequence[Item]) -> Iterator[Result]:
    """work(item) for every item in up to 8 threads (each may hold a full-size image), results in
    the items' order. The first exception, in that order, is raised as soon as it is reached, and
    Executor.map cancels the items not yet started: a broken file is named before the rest are read."""
    with ThreadPoolExecutor(max(1, min(len(items), os.cpu_count() or 1, 8))) as pool:
        yield from pool.map(work, items)
