"""Mixed precision: chosen for the hardware, overridden by [training], shown and recorded."""

import pytest
import torch
import transformers.utils

from ftrun.precision import choose_precision


@pytest.fixture
def hardware(monkeypatch):
    """hardware(cuda, bf16): pretend this machine has (or lacks) a GPU, with or without native bf16."""

    def pretend(cuda: bool, bf16: bool = False) -> None:
        monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: cuda and (bf16 or including_emulation))
        monkeypatch.setattr(transformers.utils, "is_torch_bf16_gpu_available", lambda: cuda and bf16)

    return pretend


@pytest.mark.parametrize(
    "cuda, bf16, expected",
    [
        (True, True, ("bf16", "auto: the GPU computes in bf16", {"bf16": True, "fp16": False})),
        # Emulated bf16 (before Ampere) does not count: fp16, which the Trainer runs with a loss scaler.
        (True, False, ("fp16", "auto: the GPU has no bf16", {"bf16": False, "fp16": True})),
        (False, False, ("fp32", "auto: no GPU", {"bf16": False, "fp16": False})),
    ],
)
def test_automatic_choice(hardware, cuda, bf16, expected):
    hardware(cuda, bf16)
    precision = choose_precision({"learning_rate": 1e-3})
    assert (precision.name, precision.reason, precision.settings) == expected


@pytest.mark.parametrize(
    "training, cuda, expected",
    [
        ({"bf16": False}, True, ("fp32", "training.bf16 = false", {"bf16": False, "fp16": False})),
        ({"fp16": True}, True, ("fp16", "training.fp16 = true", {"bf16": False, "fp16": True})),
        ({"bf16": False, "fp16": True}, True, ("fp16", "training.bf16 = false, training.fp16 = true", {"bf16": False, "fp16": True})),
        # bf16 asked for without a GPU: CPU autocast, which TrainingArguments allows only with use_cpu.
        ({"bf16": True}, False, ("bf16", "training.bf16 = true", {"bf16": True, "fp16": False, "use_cpu": True})),
    ],
)
def test_explicit_setting_wins(hardware, training, cuda, expected):
    hardware(cuda, bf16=True)
    precision = choose_precision(training)
    assert (precision.name, precision.reason, precision.settings) == expected


def test_run_shows_and_records_the_automatic_choice(cli, tiny_manifest, tmp_path):
    result = cli("--manifest", tiny_manifest, "--output-dir", tmp_path / "out")
    assert result.code == 0, result
    expected = str(choose_precision({}))  # fp32 (auto: no GPU) on a machine without one
    assert f"precision {expected}, output" in result.out.splitlines()[0]
    assert f"in {expected}." in (tmp_path / "out" / "README.md").read_text()


def test_run_in_bf16_when_asked(cli, tiny_manifest, tmp_path):
    result = cli("--manifest", tiny_manifest, "--set", "training.bf16=true", "--output-dir", tmp_path / "out")
    assert result.code == 0, result
    assert "precision bf16 (training.bf16 = true)" in result.out.splitlines()[0]
    args = torch.load(tmp_path / "out" / "training_args.bin", weights_only=False)
    assert args.bf16 and not args.fp16
    assert "in bf16 (training.bf16 = true)." in (tmp_path / "out" / "README.md").read_text()
