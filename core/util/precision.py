"""Mixed precision, chosen for the hardware and the model unless ``[training]`` says otherwise.

bf16 where the GPU computes in it natively, fp16 (with the Trainer's loss scaler) on a GPU
that has no bf16, bf16 autocast on a CPU with bf16 instructions (AVX512-BF16 or AMX) for a
model wide enough to gain from it, fp32 otherwise. Without those instructions bf16 autocast is
emulated and trained several times slower than fp32, so there bf16 stays an explicit
``training.bf16 = true``. Autocast casts every matrix multiplication's inputs: a narrow model's
multiplications are too small for bf16's faster arithmetic to pay for the casts (a tiny ViT
trained 1.2-4x slower in bf16, ``benchmarks/precision.py``). The measured speeds and accuracies in each
precision are in docs/performance.md, with the commands that reproduce them.

Mixed precision is for training only: the Trainer's evaluations, ``ftrun eval``, ``ftrun predict``
and a run's ``[predict]`` examples compute in fp32, the saved weights' precision, as plain
transformers runs the saved model (``full_precision``), so that the metrics a run reports are
those its model gives anywhere.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from typing import Any

#: On a CPU, models narrower than this train no faster in bf16 autocast than in fp32, and a tiny ViT
#: 1.2-4x slower; from a hidden size of 192 up, bf16 was as fast or faster (benchmarks/precision.py,
#: docs/performance.md): the threshold lies between the two measured widths.
CPU_BF16_MIN_HIDDEN_SIZE = 128


@dataclasses.dataclass(frozen=True)
class Precision:
    name: str
    """``bf16``, ``fp16`` or ``fp32``."""
    reason: str
    """Why: shown next to the choice in the run summary and the model card."""
    settings: dict[str, Any]
    """The ``TrainingArguments`` fields that select it."""

    def __str__(self) -> str:
        return f"{self.name} ({self.reason})"


def choose_precision(training: dict[str, Any], model_config: Any = None) -> Precision:
    """The precision of a run with these ``[training]`` settings, on this machine, for the model of ``model_config``.

    An explicit ``bf16`` or ``fp16`` in ``[training]`` wins: the one set to true, else fp32. On a
    CPU with bf16 instructions, the model's hidden size decides (a config without one: bf16).
    """
    import torch

    given = [f"training.{key} = {str(training[key]).lower()}" for key in ("bf16", "fp16") if key in training]
    if given:
        name = "bf16" if training.get("bf16") else "fp16" if training.get("fp16") else "fp32"
        return Precision(name, ", ".join(given), precision_settings(name))
    use_cpu = training.get("use_cpu")
    if torch.cuda.is_available() and not use_cpu:
        # Native bf16 only (Ampere and later): emulated bf16 on older GPUs is slower than fp16.
        if torch.cuda.is_bf16_supported(including_emulation=False):
            return Precision("bf16", "auto: the GPU computes in bf16", precision_settings("bf16"))
        return Precision("fp16", "auto: the GPU has no bf16", precision_settings("fp16"))
    if not cpu_computes_in_bf16():
        return Precision("fp32", "auto: a CPU without bf16 instructions", precision_settings("fp32"))
    if use_cpu is False:
        # The Trainer allows CPU autocast only with use_cpu: an explicit false would make bf16 an error.
        return Precision("fp32", "auto: training.use_cpu = false rules out CPU autocast", precision_settings("fp32"))
    hidden = getattr(model_config, "hidden_size", None)
    if isinstance(hidden, int) and hidden < CPU_BF16_MIN_HIDDEN_SIZE:
        reason = f"auto: hidden size {hidden} < {CPU_BF16_MIN_HIDDEN_SIZE}, too narrow to gain from the CPU's bf16"
        return Precision("fp32", reason, precision_settings("fp32"))
    return Precision("bf16", "auto: the CPU computes in bf16", precision_settings("bf16"))


@contextlib.contextmanager
def full_precision(model: Any) -> Iterator[None]:
    """Run ``model`` in its weights' own precision (fp32) within this block, even where the Trainer wrapped its forward in autocast.

    Mixed precision is for training: evaluation and prediction compute as the saved model does
    under ``ftrun predict`` and plain transformers, so that the metrics a run reports are those
    its model gives anywhere. accelerate's autocast wraps ``model.forward`` and keeps the
    model's own as ``_original_forward`` (what its ``extract_model_from_parallel`` unwraps), for
    as long as the model trains: put back for this block, not for good, since training goes on.
    """
    own = model.__dict__.get("_original_forward")
    if own is None:
        yield
        return
    wrapped = model.__dict__["forward"]
    model.forward = own
    try:
        yield
    finally:
        model.forward = wrapped


def cpu_computes_in_bf16() -> bool:
    """Whether this CPU has bf16 instructions (x86's AVX512-BF16 or AMX), which autocast uses.

    torch has no public query for this, only private ``torch.cpu`` helpers: a torch without
    them means no. Arm CPUs with bf16 are left in fp32 until measured.
    """
    import torch

    checks = [getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    return any(check() for check in checks if check is not None)


def precision_settings(name: str) -> dict[str, Any]:
    from transformers.utils import is_torch_bf16_gpu_available

    settings: dict[str, Any] = {"bf16": name == "bf16", "fp16": name == "fp16"}
    if name == "bf16" and not is_torch_bf16_gpu_available():
        # Asked for on a machine without a bf16 accelerator: TrainingArguments refuses bf16
        # there unless told to train on the CPU, where it uses CPU autocast.
        settings["use_cpu"] = True
    return settings
