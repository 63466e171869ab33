"""The fast renderer keeps freed feature maps in the heap (smapgan.fast.memory): no page faults on reuse.

Each check runs in a fresh interpreter: malloc settings and arenas are per process, and other tests'
threads (a launched app) can move the main thread to another arena.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from smapgan.fast import memory

# 48 MB: above glibc's largest mmap threshold (32 MB), so by default every allocation maps fresh pages.
PROBE = textwrap.dedent("""
    import resource, sys, torch
    from smapgan.fast import memory

    NBYTES = 48 << 20

    def faults():
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        buf = torch.empty(NBYTES // 4, dtype=torch.float32)
        buf.fill_(1.0)
        del buf
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

    keep = sys.argv[1] == "keep"
    if keep:
        assert memory.keep_freed_memory()
    # The heap settles in a few allocations (a small object may take part of a freed block once).
    out = [faults() for _ in range(8)]
    if keep:
        kept = memory.trim_beyond(memory.free_heap_bytes())  # within the budget: nothing returned
        out += [int(kept), faults(), int(memory.trim_beyond(NBYTES // 2)), faults()]
    print(*out)
""")
PAGES = (48 << 20) // 4096

pytestmark = pytest.mark.skipif(memory._libc() is None, reason="glibc only")


def _probe(mode: str) -> list[int]:
    out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return [int(v) for v in out.stdout.split()]


def test_without_the_setting_each_large_buffer_faults_its_pages_in() -> None:
    settled = _probe("default")[4:]
    assert all(f > 0.5 * PAGES for f in settled)  # what the setting is for


def test_a_freed_large_buffer_is_reused_and_the_budget_returns_the_rest() -> None:
    out = _probe("keep")
    settled, (trimmed_within, again, trimmed_beyond, after_trim) = out[4:8], out[8:]
    assert all(f < 0.05 * PAGES for f in settled), f"page faults for a buffer the heap already held: {out[:8]}"
    assert not trimmed_within and again < 0.05 * PAGES  # within the budget: kept and reused
    assert trimmed_beyond and after_trim > 0.5 * PAGES  # beyond it: returned, so faulted in again


def test_without_the_free_byte_count_every_render_trims(monkeypatch) -> None:
    """glibc before 2.33 has no mallinfo2: the budget cannot be read, so memory is returned every time."""
    calls = []
    monkeypatch.setattr(memory, "free_heap_bytes", lambda: None)
    monkeypatch.setattr(memory, "release_free_memory", lambda: calls.append(1))
    assert memory.trim_beyond(1 << 40) and calls == [1]
    monkeypatch.setattr(memory, "free_heap_bytes", lambda: 1 << 20)
    assert not memory.trim_beyond(2 << 20) and memory.trim_beyond(1 << 19) and calls == [1, 1]


def test_the_renderer_keeps_about_one_render_of_free_heap() -> None:
    """The budget scales with the model (3x its largest cached pyramid), so a small model keeps little."""
    import torch

    from smapgan.config import StyleMapGANConfig
    from smapgan.fast import FastRenderer
    from smapgan.model import StyleMapGAN

    torch.manual_seed(0)
    config = StyleMapGANConfig(size=32, latent_spatial_size=4, latent_channel_size=8, mapping_layer_num=2,
                               channel_base=512, channel_max=32)
    model = StyleMapGAN(config, with_discriminator=False).eval()
    renderer = FastRenderer(model)
    assert renderer._engine.keep_free_bytes() == 0  # nothing cached: every render trims, as before
    with torch.no_grad():
        handle = renderer.encode(torch.zeros(1, 3, 32, 32))
        renderer.render(handle)
    pyramid = sum(t.numel() * t.element_size() for t in renderer.pyramid(handle))
    assert renderer._engine.keep_free_bytes() == min(memory.KEEP_FREE_BYTES, 3 * pyramid) == 3 * pyramid
