"""The training heap tuning: freed step buffers are reused instead of mapped again."""

from __future__ import annotations

import resource

import pytest
import torch

from training import heap

BUFFER = (512, 7255)  # one [users, anime] float buffer of a CPU training step (~15 MB)


def _faults_of_steps(steps: int = 8) -> int:
    """Minor page faults of allocating, touching and freeing step-sized buffers (after as
    many warm-up steps: the heap grows to its working size first)."""
    for _ in range(steps):
        torch.zeros(BUFFER).add_(1.0)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(steps):
        torch.zeros(BUFFER).add_(1.0)
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


def test_steady_heap_reuses_freed_buffers_and_restores_the_defaults():
    pages = BUFFER[0] * BUFFER[1] * 4 // 4096  # ~3,600 pages per buffer if mapped afresh
    with heap.steady_heap() as tuned:
        if not tuned:
            pytest.skip("no glibc allocator to tune here")
        inside = _faults_of_steps()
    outside = _faults_of_steps()
    assert inside < pages  # eight buffers, less than one buffer's pages faulted in
    assert outside > 4 * pages  # defaults back: every large buffer is mapped again


def test_steady_heap_nests():
    with heap.steady_heap() as outer:
        with heap.steady_heap() as inner:
            assert inner == outer
        if outer:
            assert _faults_of_steps() < 1000  # still tuned after the inner block left
