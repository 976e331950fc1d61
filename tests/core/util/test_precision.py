"""Mixed precision: chosen for the hardware, overridden by [training], shown and recorded."""

import pytest
import torch
import transformers.utils

from ftrun.util.precision import choose_precision


@pytest.fixture
def hardware(monkeypatch):
    """hardware(cuda, bf16, cpu_bf16): pretend this machine has (or lacks) a GPU, with or without
    native bf16, and a CPU with AVX512-BF16 or AMX instructions (or neither)."""

    def pretend(cuda: bool, bf16: bool = False, cpu_bf16: str | None = None) -> None:
        monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: cuda and (bf16 or including_emulation))
        monkeypatch.setattr(transformers.utils, "is_torch_bf16_gpu_available", lambda: cuda and bf16)
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: cpu_bf16 == "avx512-bf16")
        monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: cpu_bf16 == "amx")

    return pretend


@pytest.mark.parametrize(
    "cuda, bf16, cpu_bf16, expected",
    [
        (True, True, None, ("bf16", "auto: the GPU computes in bf16", {"bf16": True, "fp16": False})),
        # Emulated bf16 (before Ampere) does not count: fp16, which the Trainer runs with a loss scaler.
        (True, False, None, ("fp16", "auto: the GPU has no bf16", {"bf16": False, "fp16": True})),
        # A GPU is used whatever the CPU can do.
        (True, False, "amx", ("fp16", "auto: the GPU has no bf16", {"bf16": False, "fp16": True})),
        # CPU autocast, which TrainingArguments allows only with use_cpu.
        (False, False, "avx512-bf16", ("bf16", "auto: the CPU computes in bf16", {"bf16": True, "fp16": False, "use_cpu": True})),
        (False, False, "amx", ("bf16", "auto: the CPU computes in bf16", {"bf16": True, "fp16": False, "use_cpu": True})),
        # Emulated bf16 on an AVX2 CPU is many times slower than fp32.
        (False, False, None, ("fp32", "auto: a CPU without bf16 instructions", {"bf16": False, "fp16": False})),
    ],
)
def test_automatic_choice(hardware, cuda, bf16, cpu_bf16, expected):
    hardware(cuda, bf16, cpu_bf16)
    precision = choose_precision({"learning_rate": 1e-3})
    assert (precision.name, precision.reason, precision.settings) == expected


@pytest.mark.parametrize(
    "use_cpu, cuda, cpu_bf16, expected",
    [
        # Training on the CPU of a GPU machine: the CPU's instructions decide.
        (True, True, "avx512-bf16", ("bf16", "auto: the CPU computes in bf16")),
        (True, True, None, ("fp32", "auto: a CPU without bf16 instructions")),
        # The Trainer refuses bf16 on a CPU without use_cpu: fp32 rather than an error.
        (False, False, "amx", ("fp32", "auto: training.use_cpu = false rules out CPU autocast")),
        (False, True, None, ("bf16", "auto: the GPU computes in bf16")),
    ],
)
def test_automatic_choice_follows_use_cpu(hardware, use_cpu, cuda, cpu_bf16, expected):
    hardware(cuda, bf16=True, cpu_bf16=cpu_bf16)
    precision = choose_precision({"use_cpu": use_cpu})
    assert (precision.name, precision.reason) == expected


def test_cpu_without_the_private_queries_stays_in_fp32(hardware, monkeypatch):
    """torch.cpu's bf16 queries are private: an older or newer torch without them means fp32, not a crash."""
    hardware(cuda=False)
    monkeypatch.delattr(torch.cpu, "_is_avx512_bf16_supported")
    monkeypatch.delattr(torch.cpu, "_is_amx_tile_supported")
    assert choose_precision({}).name == "fp32"


@pytest.mark.parametrize(
    "training, cuda, expected",
    [
        ({"bf16": False}, True, ("fp32", "training.bf16 = false", {"bf16": False, "fp16": False})),
        ({"fp16": True}, True, ("fp16", "training.fp16 = true", {"bf16": False, "fp16": True})),
        ({"bf16": False, "fp16": True}, True, ("fp16", "training.bf16 = false, training.fp16 = true", {"bf16": False, "fp16": True})),
        # bf16 asked for without a GPU: CPU autocast, which TrainingArguments allows only with use_cpu.
        ({"bf16": True}, False, ("bf16", "training.bf16 = true", {"bf16": True, "fp16": False, "use_cpu": True})),
        # fp32 on a CPU that would compute in bf16.
        ({"bf16": False}, False, ("fp32", "training.bf16 = false", {"bf16": False, "fp16": False})),
    ],
)
def test_explicit_setting_wins(hardware, training, cuda, expected):
    hardware(cuda, bf16=True, cpu_bf16="amx")
    precision = choose_precision(training)
    assert (precision.name, precision.reason, precision.settings) == expected


def test_run_shows_and_records_the_automatic_choice(ftrun_cli, tiny_manifest, tmp_path):
    result = ftrun_cli("--manifest", tiny_manifest, "--output-dir", tmp_path / "out")
    assert result.code == 0, result
    expected = str(choose_precision({}))  # this machine's: bf16 or fp32 on a CPU, by its instructions
    assert f"precision {expected}, output" in result.out.splitlines()[0]
    assert f"in {expected}." in (tmp_path / "out" / "README.md").read_text()


def test_run_in_bf16_when_asked(ftrun_cli, tiny_manifest, tmp_path):
    result = ftrun_cli("--manifest", tiny_manifest, "--set", "training.bf16=true", "--output-dir", tmp_path / "out")
    assert result.code == 0, result
    assert "precision bf16 (training.bf16 = true)" in result.out.splitlines()[0]
    args = torch.load(tmp_path / "out" / "training_args.bin", weights_only=False)
    assert args.bf16 and not args.fp16
    assert "in bf16 (training.bf16 = true)." in (tmp_path / "out" / "README.md").read_text()


def test_run_in_bf16_automatically_on_a_cpu_with_bf16(ftrun_cli, tiny_manifest, tmp_path, hardware):
    hardware(cuda=False, cpu_bf16="avx512-bf16")
    result = ftrun_cli("--manifest", tiny_manifest, "--output-dir", tmp_path / "out")
    assert result.code == 0, result
    assert "precision bf16 (auto: the CPU computes in bf16)" in result.out.splitlines()[0]
    args = torch.load(tmp_path / "out" / "training_args.bin", weights_only=False)
    assert args.bf16 and args.use_cpu and not args.fp16
