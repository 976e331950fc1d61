"""Training on the CPU allocates from glibc's heap, which keeps freed memory; glibc's defaults come back after."""

from __future__ import annotations

import ctypes
import os
import platform
import sys

import pytest
import torch

from ftrun.util.memory import keep_freed_memory, tuned_by_user

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc" or tuned_by_user(),
    reason="glibc's malloc, untuned, only",
)

#: Over glibc's 32 MiB ceiling on its mmap threshold: with its defaults, always a mapping of its own.
BIG = 64 * 2**20


class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]


def mallinfo() -> MallInfo2:
    libc = ctypes.CDLL(None)
    libc.mallinfo2.restype = MallInfo2
    return libc.mallinfo2()


def resident_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def mapped_for_a_big_tensor() -> int:
    """Bytes glibc mapped on their own (outside its heap) for a new tensor of at least 64 MiB.

    The tensor asks for more than the heap holds free, so that no free chunk an earlier run in
    this process left behind can serve it; it is left untouched, so it costs no memory.
    """
    before = mallinfo()
    tensor = torch.empty(BIG + before.fordblks, dtype=torch.uint8)
    mapped = mallinfo().hblkhd - before.hblkhd
    del tensor
    return mapped


def test_on_the_cpu_large_blocks_come_from_the_heap_and_glibc_s_defaults_come_back():
    assert mapped_for_a_big_tensor() >= BIG
    with keep_freed_memory(torch.device("cpu")):
        assert mapped_for_a_big_tensor() == 0
        torch.ones(BIG // 4).sum()  # its pages touched, then freed: the heap keeps them
        holding = resident_bytes()
    assert resident_bytes() <= holding - BIG  # what the heap held free went back to the system
    assert mapped_for_a_big_tensor() >= BIG


def test_the_defaults_come_back_when_training_fails():
    with pytest.raises(RuntimeError), keep_freed_memory(torch.device("cpu")):
        raise RuntimeError("training failed")
    assert mapped_for_a_big_tensor() >= BIG


@pytest.mark.parametrize(
    "device, env",
    [
        ("cuda", {}),  # a GPU's host memory sees no such churn
        ("cpu", {"MALLOC_ARENA_MAX": "2"}),
        ("cpu", {"GLIBC_TUNABLES": "glibc.malloc.mmap_threshold=1048576"}),
        ("cpu", {"LD_PRELOAD": "/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4"}),
    ],
)
def test_malloc_is_left_as_the_user_set_it_and_alone_on_a_gpu(monkeypatch, device, env):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with keep_freed_memory(torch.device(device)):
        assert mapped_for_a_big_tensor() >= BIG


def test_without_glibc_nothing_is_changed(monkeypatch):
    monkeypatch.setattr(platform, "libc_ver", lambda: ("musl", ""))
    with keep_freed_memory(torch.device("cpu")):
        assert mapped_for_a_big_tensor() >= BIG


def test_a_run_trains_and_evaluates_with_the_heap_kept_and_ends_with_glibc_s_defaults(ftrun_cli, ftrun_plugin_module, tiny_manifest, tmp_path):
    ftrun_plugin_module(
        "heap_probe",
        """
        import sys
        from transformers import TrainerCallback
        from ftrun import hookimpl

        probe = sys.modules[MODULE].mapped_for_a_big_tensor
        mapped = {"training": [], "final evaluation": []}

        class Probe(TrainerCallback):
            phase = "training"

            def on_step_begin(self, args, state, control, **kwargs):
                mapped[self.phase].append(probe())

            def on_prediction_step(self, args, state, control, **kwargs):
                mapped[self.phase].append(probe())

            def on_train_end(self, args, state, control, **kwargs):
                self.phase = "final evaluation"

        @hookimpl
        def ftrun_trainer_callbacks(task, config):
            return [Probe()]
        """.replace("MODULE", repr(__name__)),
    )
    assert ftrun_cli("--manifest", tiny_manifest, "--plugin", "heap_probe", "--output-dir", tmp_path / "out").code == 0
    import heap_probe

    assert all(heap_probe.mapped.values()) and set(heap_probe.mapped["training"] + heap_probe.mapped["final evaluation"]) == {0}
    assert mapped_for_a_big_tensor() >= BIG
