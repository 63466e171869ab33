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

    mode = sys.argv[1]
    if mode != "default":
        assert memory.keep_freed_memory()
    keeper = memory.FreeHeapKeeper()
    if mode == "holes":
        # Free heap beyond the budget that an earlier trim already returned: a 96 MB hole under a live block.
        hole = torch.ones((2 * NBYTES) // 4)
        pin = torch.ones(1 << 20)
        del hole
        keeper.trim()
        assert memory.free_heap_bytes() > 2 * NBYTES  # glibc still counts the hole as free
        out = []
        for _ in range(8):  # a render's 48 MB comes and goes; the budget (64 MB) holds it, not the hole
            out += [faults(), int(keeper.trim_beyond(NBYTES + (16 << 20)))]
        print(*out)
        raise SystemExit
    keeper.trim()
    # The heap settles in a few allocations (a small object may take part of a freed block once).
    out = [faults() for _ in range(8)]
    if mode == "keep":
        kept = keeper.trim_beyond(4 * NBYTES)  # within the budget (the buffer, wherever it landed): kept
        out += [int(kept), faults(), int(keeper.trim_beyond(NBYTES // 2)), faults()]
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


def test_free_heap_already_returned_does_not_count_against_the_budget() -> None:
    """A hole returned by an earlier trim stays in glibc's free count; a rule on that count trimmed
    after every render once the holes exceeded the budget, and each render faulted its pages in again."""
    out = _probe("holes")
    faults, trims = out[0::2], out[1::2]
    # The first buffers land in different parts of the hole (faulting them in, once trimmed); then it settles.
    assert not any(trims[3:]), f"trimmed with only one render's memory resident: {out}"
    assert all(f < 0.05 * PAGES for f in faults[4:]), f"a render's pages were faulted in again: {out}"


def test_the_resident_estimate_and_its_fallback(monkeypatch) -> None:
    """Resident free since the last trim: the larger of the growth of RSS not in use and of the free count;
    where either cannot be read, trim every time."""
    calls = []
    rss, used, free = [1000 << 20], [600 << 20], [300 << 20]
    monkeypatch.setattr(memory, "release_free_memory", lambda: calls.append(1))
    monkeypatch.setattr(memory, "resident_bytes", lambda: rss[0])
    monkeypatch.setattr(memory, "heap_counts", lambda: (used[0], free[0]))
    keeper = memory.FreeHeapKeeper()
    assert keeper.resident_free_bytes() is None
    assert keeper.trim_beyond(1 << 40) and calls == [1]  # the first call calibrates
    assert keeper.resident_free_bytes() == 0
    rss[0] += 8 << 20  # a render faulted 8 MB of a returned hole in, then freed it: the free count is as it was
    assert keeper.resident_free_bytes() == 8 << 20
    used[0] += 4 << 20  # half of it is in use again
    assert keeper.resident_free_bytes() == 4 << 20
    free[0] += 6 << 20  # 6 MB freed beyond the holes (RSS not in use seen as 4 MB: small blocks in used pages)
    assert keeper.resident_free_bytes() == 6 << 20
    assert not keeper.trim_beyond(6 << 20) and calls == [1]  # 6 MB resident: within the budget
    rss[0] += 100 << 20
    assert keeper.resident_free_bytes() == 104 << 20
    assert not keeper.trim_beyond(104 << 20) and keeper.trim_beyond(103 << 20) and calls == [1, 1]
    assert keeper.resident_free_bytes() == 0  # recalibrated
    # glibc before 2.33 (no mallinfo2) or no /proc: the budget cannot be read, so memory is returned every time
    monkeypatch.setattr(memory, "heap_counts", lambda: None)
    assert keeper.trim_beyond(1 << 40) and keeper.trim_beyond(1 << 40) and calls == [1, 1, 1, 1]


def test_the_renderer_keeps_about_one_render_of_free_heap(monkeypatch) -> None:
    """The budget scales with the model (3x its largest cached pyramid). A model whose budget would be under
    ``REUSE_MIN_BYTES`` keeps glibc's defaults and trims after every render (with the heap reuse the bundled
    model's server grew by fragments); a larger one switches the reuse on and keeps its budget."""
    import torch

    from smapgan.networks.config import StyleMapGANConfig
    from smapgan.fast import FastRenderer, prepared, renderer as renderer_module
    from smapgan.model import StyleMapGAN

    switched: list[int] = []
    monkeypatch.setattr(renderer_module, "keep_freed_memory", lambda: switched.append(1) or True)
    torch.manual_seed(0)
    config = StyleMapGANConfig(size=32, latent_spatial_size=4, latent_channel_size=8, mapping_layer_num=2,
                               channel_base=512, channel_max=32)
    model = StyleMapGAN(config, with_discriminator=False).eval()

    def renders(renderer: FastRenderer, handle, n: int) -> list:
        trims: list = []
        monkeypatch.setattr(renderer._engine.heap, "trim", lambda: trims.append("trim"))
        monkeypatch.setattr(renderer._engine.heap, "trim_beyond", lambda keep: trims.append(keep) or False)
        with torch.no_grad():
            for _ in range(n):
                renderer.render(handle)
        return trims

    renderer = FastRenderer(model)
    engine = renderer._engine
    assert engine.keep_free_bytes() == 0  # nothing cached
    with torch.no_grad():
        handle = renderer.encode(torch.zeros(1, 3, 32, 32))
        renderer.render(handle)
    assert engine.heap.resident_free_bytes() is not None  # calibrated by the render's trim
    pyramid = sum(t.numel() * t.element_size() for t in renderer.pyramid(handle))
    assert prepared.pyramid_nbytes(model.generator.decoder) == pyramid
    assert engine.keep_free_bytes() == min(memory.KEEP_FREE_BYTES, 3 * pyramid) == 3 * pyramid
    # small: glibc's defaults, trimmed after every render
    assert renders(renderer, handle, 3) == ["trim"] * 3 and not switched and not engine.reuse_heap

    monkeypatch.setattr(renderer_module, "REUSE_MIN_BYTES", 3 * pyramid)  # as large as a 256 px model's
    large = FastRenderer(model)
    assert switched and large._engine.reuse_heap  # the reuse is on from the start (the first render gains too)
    with torch.no_grad():
        handle = large.encode(torch.zeros(1, 3, 32, 32))
    assert renders(large, handle, 2) == [3 * pyramid] * 2  # and the budget decides
