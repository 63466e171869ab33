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
def test_release_returns_the_heap_and_keep_is_set_once() -> None:
    assert memory.keep_freed_memory() is memory.keep_freed_memory()  # once per process
    _faults_of_a_big_buffer(64 << 20)
    memory.release_free_memory()  # trimmed: the next buffer of that size faults its pages in again
    assert _faults_of_a_big_buffer(64 << 20) > 0.5 * (64 << 20) / 4096
