"""Mixed precision: chosen for the hardware, overridden by [training], shown and recorded."""

import pytest
import torch
import transformers.utils
from transformers import AutoConfig

from ftrun.testing import TINY_BERT
from ftrun.util.precision import CPU_BF16_MIN_HIDDEN_SIZE, choose_precision


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


@pytest.mark.parametrize(
    "hidden_size, expected",
    [
        # Autocast's casts cost more than bf16 saves on a narrow model's small multiplications (benchmarks/precision.py).
        (64, ("fp32", f"auto: hidden size 64 < {CPU_BF16_MIN_HIDDEN_SIZE}, too narrow to gain from the CPU's bf16")),
        (CPU_BF16_MIN_HIDDEN_SIZE, ("bf16", "auto: the CPU computes in bf16")),
        (768, ("bf16", "auto: the CPU computes in bf16")),
    ],
)
def test_a_cpu_with_bf16_trains_a_narrow_model_in_fp32(hardware, hidden_size, expected):
    hardware(cuda=False, cpu_bf16="amx")
    precision = choose_precision({}, AutoConfig.for_model("bert", hidden_size=hidden_size, num_attention_heads=4))
    assert (precision.name, precision.reason) == expected
    # A GPU, or an explicit setting, is not second-guessed by the model's size.
    hardware(cuda=True, bf16=True)
    assert choose_precision({}, AutoConfig.for_model("vit", hidden_size=64, num_attention_heads=2)).name == "bf16"
    assert choose_precision({"bf16": True}, AutoConfig.for_model("vit", hidden_size=64, num_attention_heads=2)).name == "bf16"


def test_a_run_in_bf16_reports_what_its_saved_model_gives_in_fp32_under_ftrun_predict_eval_and_plain_transformers(ftrun_cli, tiny_manifest, tmp_path):
    """Mixed precision is for training: evaluation and prediction compute as plain transformers runs the saved model."""
    import json

    import tomllib
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    out = tmp_path / "out"
    result = ftrun_cli("--manifest", tiny_manifest, "--set", "training.bf16=true", "--output-dir", out)
    assert result.code == 0, result
    assert "precision bf16 (training.bf16 = true)" in result.out.splitlines()[0]
    model, tokenizer = AutoModelForSequenceClassification.from_pretrained(out).eval(), AutoTokenizer.from_pretrained(out)
    manifest = tomllib.loads((out / "ftrun.toml").read_text())
    rows = [json.loads(line) for line in open(manifest["data"]["eval_file"], encoding="utf-8")]
    inputs = tokenizer([row["text"] for row in rows], truncation=True, max_length=64, padding=True, return_tensors="pt")
    labels = torch.tensor([model.config.label2id[row["label"]] for row in rows])
    with torch.no_grad():
        loss = torch.nn.functional.cross_entropy(model(**inputs).logits, labels).item()
    reported = json.loads((out / "eval_results.json").read_text())["eval_loss"]
    assert reported == pytest.approx(loss, rel=2e-7)  # evaluated under the training's bf16 autocast, it differed by 2e-6
    again = ftrun_cli("eval", "--model", out)
    assert again.code == 0, again
    assert json.loads((tmp_path / "out-eval" / "eval_results.json").read_text())["eval_loss"] == pytest.approx(loss, rel=2e-7)
    examples = manifest["predict"]["examples"]
    with torch.no_grad():
        scores = model(**tokenizer(examples, padding=True, return_tensors="pt")).logits.softmax(-1).max(-1).values.tolist()
    assert [prediction["score"] for prediction in result.run.predictions] == pytest.approx(scores, rel=1e-6)
    predicted = ftrun_cli("predict", "--model", out, "--json", *examples)
    assert [json.loads(line)["score"] for line in predicted.out.splitlines()] == pytest.approx(scores, rel=1e-6)


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
    # This machine's choice for the tiny model: fp32, or bf16 on a GPU.
    expected = str(choose_precision({}, AutoConfig.for_model(**TINY_BERT)))
    assert f"precision {expected}, output" in result.out.splitlines()[0]
    assert f"in {expected}." in (tmp_path / "out" / "README.md").read_text()


def test_run_in_bf16_when_asked(ftrun_cli, tiny_manifest, tmp_path):
    result = ftrun_cli("--manifest", tiny_manifest, "--set", "training.bf16=true", "--output-dir", tmp_path / "out")
    assert result.code == 0, result
    assert "precision bf16 (training.bf16 = true)" in result.out.splitlines()[0]
    args = torch.load(tmp_path / "out" / "training_args.bin", weights_only=False)
    assert args.bf16 and not args.fp16
    assert "in bf16 (training.bf16 = true)." in (tmp_path / "out" / "README.md").read_text()


def test_a_narrow_model_runs_in_fp32_automatically_on_a_cpu_with_bf16(ftrun_cli, tiny_manifest, tmp_path, hardware):
    # A tiny ViT trained 1.2-4x slower in bf16 (docs/performance.md): the first line says why a narrow model is in fp32.
    hardware(cuda=False, cpu_bf16="avx512-bf16")
    result = ftrun_cli("--manifest", tiny_manifest, "--output-dir", tmp_path / "out")
    assert result.code == 0, result
    reason = f"auto: hidden size {TINY_BERT['hidden_size']} < {CPU_BF16_MIN_HIDDEN_SIZE}, too narrow to gain from the CPU's bf16"
    assert f"precision fp32 ({reason})" in result.out.splitlines()[0]
    args = torch.load(tmp_path / "out" / "training_args.bin", weights_only=False)
    assert not args.bf16 and not args.fp16
    assert f"in fp32 ({reason})." in (tmp_path / "out" / "README.md").read_text()
