"""Runs of several processes, on the engines of PyTorch and Hugging Face: nothing home-made.

- torchrun (``torch.distributed.run``) starts the processes: ``torchrun --nproc_per_node N
  -m ftrun ...``, ``accelerate launch -m ftrun ...`` (which starts them with torchrun too), or
  ``ftrun --nproc N``, which hands its own command line to torchrun on this machine.
- accelerate's ``PartialState`` tells the main process from the others and makes them wait for it.
- The Trainer does the rest, as ``[training]`` says: DDP, FSDP or DeepSpeed, a share of each
  batch per process, and metrics gathered without the examples repeated to fill the last batch.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from ftrun.util.errors import FtrunError

if TYPE_CHECKING:
    from accelerate import PartialState

    from ftrun.manifest.config import RunConfig

#: Set by ``ftrun --nproc`` for the processes it starts: they leave their errors to it to show once.
LAUNCHER_ENV = "FTRUN_LAUNCHER"


def launched() -> bool:
    """Whether torchrun (or a launcher built on it) started this process."""
    return "LOCAL_RANK" in os.environ


def several_processes() -> bool:
    """Whether this process is one of several training together (torchrun's ``WORLD_SIZE``)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def is_main_process() -> bool:
    """Whether this process prints and writes: the only one of a plain run, rank 0 of a launched one.

    Read from torchrun's ``RANK``, not from accelerate, because the display is needed before
    the config that says how accelerate is to be set up.
    """
    return os.environ.get("RANK", "0") == "0"


def process_state(config: RunConfig) -> PartialState:
    """accelerate's state of this process, set up as the Trainer will set it up.

    On a machine with no GPU (or with ``use_cpu``), the processes talk over gloo on the CPU.
    The Trainer runs DDP on the CPU only when told so (``use_cpu``, or ``ACCELERATE_USE_CPU``
    as ``accelerate launch --cpu`` sets it): without it each process of a torchrun would
    train alone on the whole data.
    """
    import torch
    from accelerate import PartialState

    cpu = bool(config.training.get("use_cpu")) or not torch.accelerator.is_available()
    if cpu and launched():
        os.environ["ACCELERATE_USE_CPU"] = "true"
    return PartialState(cpu=cpu)


def check_engines(config: RunConfig) -> None:
    """An engine that ``[training]`` asks for and that is not installed: say so before anything loads."""
    if config.training.get("deepspeed"):
        from transformers.integrations import is_deepspeed_available

        if not is_deepspeed_available():
            raise FtrunError(f"{config.where('training.deepspeed')}: DeepSpeed is not installed (pip install deepspeed)")


def parse_nproc(value: str) -> int:
    """``--nproc N``: a positive number of processes."""
    try:
        nproc = int(value)
    except ValueError:
        nproc = 0
    if nproc < 1:
        raise FtrunError(f"--nproc {value}: expected a positive number of processes")
    return nproc


def check_nproc(nproc: int, where: str) -> None:
    """In a launched process: the number of processes asked for must be the number started here."""
    started = os.environ.get("LOCAL_WORLD_SIZE")
    if started is not None and int(started) != nproc:
        raise FtrunError(f"{where}: {nproc} processes asked for, but the launcher started {started} on this machine")


def launch(nproc: int, argv: list[str], verbose: bool = False) -> int:
    """Run ``ftrun ARGV`` in ``nproc`` processes on this machine, started by torchrun; their exit code.

    torchrun's standalone rendezvous needs no address or port. A process that fails leaves its
    error line in its torchrun error file (:func:`report_error`); the first failure is shown
    here, once, not the processes that torchrun stopped because of it.
    """
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import get_args_parser, run

    os.environ[LAUNCHER_ENV] = "1"
    parser = get_args_parser()
    parser.allow_abbrev = False  # else ftrun's own --nproc, after the module name, reads as torchrun's --nproc-per-node
    args = parser.parse_args(["--standalone", f"--nproc-per-node={nproc}", "--module", "ftrun", *argv])
    if not verbose:  # torchrun logs each process it stops and each that fails; the error line says what matters
        logging.disable(logging.ERROR)
    try:
        run(args)
    except ChildFailedError as exc:
        # The first to fail: of the processes that exited on their own, the earliest, to the fraction
        # of a second its error file holds (a process whose peer failed fails moments later).
        rank, failure = min(
            exc.failures.items(),
            key=lambda item: (item[1].exitcode <= 0, float(item[1].error_file_data.get("timestamp", item[1].timestamp))),
        )
        if isinstance(failure.message, str) and failure.message.startswith("ftrun: "):
            print(failure.message, file=sys.stderr)  # the process's own error line
        else:  # it ended without one: killed, or after a traceback of its own (--traceback)
            how = failure.signal_name() if failure.exitcode < 0 else f"exit code {failure.exitcode}"
            print(f"ftrun: error: process {rank} stopped ({how})", file=sys.stderr)
        return failure.exitcode if failure.exitcode > 0 else 1
    except SignalException as exc:  # Ctrl-C reached the processes too: they said so themselves
        return 128 + int(exc.sigval)
    finally:
        logging.disable(logging.NOTSET)
    return 0


def report_error(line: str) -> None:
    """Show an error line: printed, and left in torchrun's error file for the launcher.

    Under ``ftrun --nproc`` only the launcher prints it, once for all the processes; under a
    plain torchrun each process prints its own, and torchrun's summary shows it too.
    """
    error_file = os.environ.get("TORCHELASTIC_ERROR_FILE")
    if error_file:
        # A message and its time: the form torchrun reads back. The time to a fraction of a second
        # tells the first failure from those it caused; torchrun itself reads whole seconds.
        Path(error_file).write_text(json.dumps({"message": line, "timestamp": time.time()}), encoding="utf-8")
    if os.environ.get(LAUNCHER_ENV) != "1":
        print(line, file=sys.stderr)
