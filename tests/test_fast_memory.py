"""The fast renderer keeps freed feature maps in the heap (smapgan.fast.memory): no page faults on reuse."""

from __future__ import annotations

import resource

import pytest
import torch

from smapgan.fast import memory


def _faults_of_a_big_buffer(nbytes: int) -> int:
    """Minor page faults of allocating, writing and freeing one buffer (its pages touched once)."""
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    buf = torch.empty(nbytes // 4, dtype=torch.float32)
    buf.fill_(1.0)
    del buf
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


@pytest.mark.skipif(memory._libc() is None, reason="glibc only")
def test_a_freed_large_buffer_is_reused_without_faults() -> None:
    # 64 MB: above glibc's largest mmap threshold, so by default every allocation maps fresh pages.
    nbytes = 64 << 20
    assert memory.keep_freed_memory()
    _faults_of_a_big_buffer(nbytes)  # the heap grows once
    again = _faults_of_a_big_buffer(nbytes)
    assert again < 0.05 * nbytes / 4096, f"{again} page faults for a buffer the heap already held"


@pytest.mark.skipif(memory._libc() is None, reason="glibc only")
def test_free_heap_is_kept_within_the_budget_and_returned_beyond_it() -> None:
    nbytes = 64 << 20
    assert memory.keep_freed_memory() is memory.keep_freed_memory()  # set once per process
    _faults_of_a_big_buffer(nbytes)
    assert memory.free_heap_bytes() >= nbytes  # the freed buffer stayed in the heap
    assert not memory.trim_beyond(memory.free_heap_bytes())  # within the budget: kept...
    assert _faults_of_a_big_buffer(nbytes) < 0.05 * nbytes / 4096  # ...and reused without faults
    assert memory.trim_beyond(nbytes // 2)  # beyond it: returned to the OS...
    assert _faults_of_a_big_buffer(nbytes) > 0.5 * nbytes / 4096  # ...so the next buffer faults its pages in
