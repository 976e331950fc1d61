"""Pre-flight: the mistakes that waste a day of training, found in seconds, before it starts.

``ftrun check`` prints this report, and every run prints its findings first and writes them
into the model card (spaCy's ``debug data`` is the model). Per split: examples and features,
labels and their imbalance, token lengths and the share cut at the limit, empty inputs,
duplicates, the eval examples that also appear in train, eval labels train lacks and the
unknown-token rate; then the optimizer schedule; then the findings, one line each naming the
manifest key to change and why. Warnings leave the run to the user; errors stop it.

The core names no task: a task says what its inputs, labels and token sequences are
(``Task.inputs_of``, ``Task.labels_of``, ``Task.sequences``) and adds findings of its own by
overriding ``Task.preflight``. Only tokenization is sampled; counting, hashing and labels
read every example.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import math
import os
import random
from collections.abc import Callable, Collection
from typing import TYPE_CHECKING, Any

from ftrun.manifest.config import merge
from ftrun.stages.data import where_row
from ftrun.util.errors import FtrunError, first_line

if TYPE_CHECKING:
    from rich.console import Console

    from ftrun.api.task import BaseTask
    from ftrun.manifest.config import RunConfig
    from ftrun.stages.data import TaskData

#: Examples of each split tokenized for the length figures; a larger split is sampled, and the report says so.
SAMPLE = 1000
#: Examples of each split that ``ftrun check`` encodes.
CHECK_SAMPLE = 32
#: A warmup from the defaults that is longer than this share of the run's steps is cut to this share.
WARMUP_SHARE = 0.1
#: A warmup of at least this share of the steps is a warning: the peak learning rate comes late, or never.
LONG_WARMUP = 0.5
#: Truncation is a warning when more than this share of a split's examples is cut.
MOST_TRUNCATED = 0.5
#: Overlap is a warning when more than this share of the eval examples also appears in train.
OVERLAP = 0.01
#: An eval split on which a share (accuracy, F1) has a larger standard error than this cannot tell runs apart.
STANDARD_ERROR = 0.025
#: A learning rate more than this factor outside its usual range is a warning.
FAR = 3.0
#: Percentiles of the token lengths in the report.
PERCENTILES = (50, 90, 99)


@dataclasses.dataclass
class TokenSequence:
    """One token sequence the model reads (the inputs; a seq2seq task's targets), as ``Task.sequences`` reports it."""

    ids: list[list[int]]
    """Each example's token ids, not truncated, special tokens included (as ``encode`` makes them)."""
    limit: int | None
    """The length ``encode`` cuts the sequence at; ``None`` for none."""
    key: str
    """The manifest key that sets ``limit``, such as ``data.max_length``."""
    pairs: list[tuple[int, int]] | None = None
    """For text pairs, each example's two lengths in tokens, special tokens aside: truncation cuts
    a text of a pair, not the pair's end, and the report says which."""
    truncation: str = "longest_first"
    """How ``encode`` truncates a pair, as the tokenizer's ``truncation`` argument: ``longest_first``
    (the longer text), ``only_first`` (multiple choice cuts the context) or ``only_second``."""


@dataclasses.dataclass
class Finding:
    """One problem, as one line: the manifest key to change and why."""

    key: str
    where: str
    """The key as an error message names it: ``run.toml: training.warmup_steps`` or ``--set ...``."""
    message: str
    error: bool = False

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


@dataclasses.dataclass
class Lengths:
    """The token lengths of one sequence in the tokenized examples of a split."""

    key: str
    limit: int | None
    percentiles: dict[str, int]
    """``p50``, ``p90``, ``p99`` and ``max``, before truncation."""
    truncated: float
    """The share of examples longer than ``limit``."""
    kept: list[int] = dataclasses.field(repr=False)
    """Each example's length after truncation: what the model reads."""
    cut: dict[str, float] | None = None
    """For text pairs, the share of the cut examples in which truncation cuts the ``first`` text, the ``second`` or ``both``."""
    truncation: str = "longest_first"
    """How the pairs are truncated (``TokenSequence.truncation``), which the report's words follow."""


@dataclasses.dataclass
class SplitReport:
    """What the pre-flight found in one split."""

    examples: int
    features: int
    features_estimated: bool
    """Whether ``features`` is extrapolated from the examples ``ftrun check`` encoded."""
    tokenized: int
    """Examples tokenized for ``lengths`` and ``unknown``: all, or a sample of ``SAMPLE``."""
    labels: dict[str, int] | None = None
    """Each label's count (classification: examples; NER: entities), most frequent first."""
    empty: int | None = None
    first_empty: str | None = None
    """Where the first example with an empty input is in the user's data: ``row 4 of train.jsonl``."""
    duplicates: int | None = None
    """Examples whose normalised input an earlier example of the split has."""
    in_train: int | None = None
    """Eval examples whose normalised input is also in train."""
    unseen: list[str] = dataclasses.field(default_factory=list)
    """Eval labels that no train example has."""
    lengths: dict[str, Lengths] = dataclasses.field(default_factory=dict)
    feature_lengths: list[int] | None = None
    """Each encoded feature's length as the task defines it (``example_lengths``): of every feature
    of a run's split, or of a sample's features; ``None``: inputs of one size, nothing to group by."""
    feature_tokens: list[tuple[int, int]] | None = None
    """Each of those features' sequences and real tokens (``example_tokens``), where a feature holds
    several; ``None``: one sequence of ``feature_lengths`` tokens each."""
    unknown: float | None = None
    """The share of tokens that are the tokenizer's unknown token."""
    figures: dict[str, str] = dataclasses.field(default_factory=dict)
    """The task's own figures of the split's inputs (``input_figures``), by row name: image sizes, durations."""

    @property
    def imbalance(self) -> float | None:
        """The most frequent label's count over the least frequent's."""
        counts = list((self.labels or {}).values())
        return max(counts) / min(counts) if len(counts) > 1 and min(counts) else None


@dataclasses.dataclass
class Schedule:
    """The optimizer steps of the run, as the Trainer will count them."""

    steps: int
    steps_per_epoch: int
    epochs: float
    batch_size: int
    accumulation: int
    processes: int
    warmup: int
    learning_rate: float
    evaluations_per_epoch: float | None
    """``None``: whenever a checkpoint strategy says so (``best``)."""
    checkpoints_per_epoch: float | None
    grouped: bool = False
    """Whether training batches are length-grouped: asked for (``train_sampling_strategy``) and the task's examples have a length."""
    real_tokens: int | None = None
    """Estimated tokens of one epoch that are the examples'; ``None`` when they have no length (inputs of one size)."""
    pad_tokens: int | None = None


@dataclasses.dataclass
class Preflight:
    """The whole report; a task adds findings with :meth:`warn` and :meth:`fail`."""

    config: RunConfig
    """The run's config, its warmup sized to the run where the defaults' did not fit."""
    splits: dict[str, SplitReport]
    schedule: Schedule
    sized: str | None = None
    """What was sized to the run, for the run's first line; ``None`` when nothing was."""
    model: dict[str, Any] = dataclasses.field(default_factory=dict)
    """The model's config (``model_type``, ``max_position_embeddings``, ...), as a dict."""
    findings: list[Finding] = dataclasses.field(default_factory=list)

    def warn(self, key: str, message: str) -> None:
        """Add a warning about manifest key ``key``: the run goes on."""
        self.findings.append(Finding(key, self.config.where(key), message))

    def fail(self, key: str, message: str) -> None:
        """Add an error about manifest key ``key``: the run would fail or learn nothing; it does not start."""
        self.findings.append(Finding(key, self.config.where(key), message, error=True))

    @property
    def warnings(self) -> list[Finding]:
        return [finding for finding in self.findings if not finding.error]

    @property
    def errors(self) -> list[Finding]:
        return [finding for finding in self.findings if finding.error]

    def as_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data (``ftrun check --json``)."""
        splits = {}
        for name, split in self.splits.items():
            record = dataclasses.asdict(split)
            record["imbalance"] = split.imbalance
            record["lengths"] = {seq: {k: v for k, v in vars(lengths).items() if k != "kept"} for seq, lengths in split.lengths.items()}
            del record["feature_lengths"], record["feature_tokens"]  # per feature: the schedule's padding figures sum them up
            splits[name] = record
        return {
            "source": self.config.source,
            "task": self.config.task,
            "model": self.config.model.name,
            "splits": splits,
            "schedule": dataclasses.asdict(self.schedule),
            "sized": self.sized,
            "warnings": [{"key": f.key, "line": str(f)} for f in self.warnings],
            "errors": [{"key": f.key, "line": str(f)} for f in self.errors],
        }


def preflight(task: BaseTask, config: RunConfig, data: TaskData, skip: Collection[Callable[[Preflight], None]] = ()) -> Preflight:
    """The generic report of a run of ``task`` on ``data`` and its findings (the default ``Task.preflight``).

    ``data`` is the data stage's (exact feature counts, from every example) or ``ftrun check``'s
    (the data stage with a ``sample``: features counted on the rows it encoded, and extrapolated).
    ``skip``: checks of ``CHECKS`` that do not apply to the task (``check_eval_size`` to a metric that is no share of examples).
    """
    from ftrun.stages.head import model_config_of

    model_config = model_config_of(config)
    model = model_config.to_dict()
    if getattr(model_config, "max_position_embeddings", None):  # by its common name, whatever the family's (GPT-2's n_positions)
        model["max_position_embeddings"] = model_config.max_position_embeddings
    (train, train_hashes), (evaluation, eval_hashes) = (describe(task, config, data, name) for name in ("train", "eval"))
    splits = {"train": train, "eval": evaluation}
    if train_hashes is not None and eval_hashes is not None:
        seen = set(train_hashes)
        evaluation.in_train = sum(key in seen for key in eval_hashes)
    if train.labels is not None and evaluation.labels is not None:
        evaluation.unseen = sorted(set(evaluation.labels) - set(train.labels))
    processes = int(os.environ.get("WORLD_SIZE") or config.nproc or 1)
    schedule = schedule_of(task, config, train, processes)
    config, sized = size_warmup(config, schedule.steps)
    if sized:
        schedule = schedule_of(task, config, train, processes)
    report = Preflight(config, splits, schedule, sized, model)
    for check in CHECKS:
        if check not in skip:
            check(report)
    return report


def describe(task: BaseTask, config: RunConfig, data: TaskData, name: str) -> tuple[SplitReport, list[bytes] | None]:
    """One split's report (counts from every example, token figures from a sample) and the hash of each example's input."""
    import numpy as np

    split = getattr(data.raw, name, None) if data.raw is not None else None
    stats = data.stats.get(name)
    if split is None:  # a data stage of a plugin's that keeps no raw examples: its features alone
        features = len(getattr(data, name))
        return SplitReport(examples=features, features=features, features_estimated=False, tokenized=0), None
    examples = len(split)
    exact = stats is not None and stats.examples == examples
    if exact:
        features = stats.features
    else:  # ftrun check encoded a few rows: as many features per example in the rest
        features = round(stats.features / stats.examples * examples) if stats and stats.examples else examples
    report = SplitReport(examples=examples, features=features, features_estimated=not exact, tokenized=min(SAMPLE, examples))
    inputs = task.inputs_of(split, config)
    hashes = None
    if inputs is not None:
        hashes = [input_hash(texts) for texts in inputs]
        empty = [row for row, texts in enumerate(inputs) if not all(text and text.strip() for text in texts)]
        report.empty = len(empty)
        report.first_empty = where_row(config, split, name, empty[0]) if empty else None
        report.duplicates = len(hashes) - len(set(hashes))
    labels = task.labels_of(split, config)
    if labels is not None:
        report.labels = dict(collections.Counter(label for example in labels for label in example).most_common())
    sample = split if examples <= SAMPLE else split.select(sorted(random.Random(0).sample(range(examples), SAMPLE)), keep_in_memory=True)
    try:
        sequences = task.sequences(sample, data, config)
        report.figures = task.input_figures(sample, data, config)
    except (FtrunError, KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # as encode_batch: a Rust tokenizer's panic is no Exception
        raise FtrunError(f"{config.where('data')}: task {task.name} cannot tokenize the {name} split: {type(exc).__name__}: {first_line(exc)}") from exc
    report.feature_lengths = feature_lengths(task, config, data, name, sample)
    if report.feature_lengths is not None:
        report.feature_tokens = feature_lengths(task, config, data, name, sample, task.example_tokens)
    for sequence_name, sequence in sequences.items():
        lengths = np.array([len(ids) for ids in sequence.ids])
        limit = sequence.limit
        report.lengths[sequence_name] = Lengths(
            key=sequence.key,
            limit=limit,
            percentiles={**{f"p{p}": int(np.percentile(lengths, p)) for p in PERCENTILES}, "max": int(lengths.max())},
            truncated=float(np.mean(lengths > limit)) if limit else 0.0,
            kept=np.minimum(lengths, limit).tolist() if limit else lengths.tolist(),
            cut=pair_cuts(lengths, sequence.pairs, limit, sequence.truncation) if sequence.pairs is not None and limit else None,
            truncation=sequence.truncation,
        )
    unknown = getattr(data.processor, "unk_token_id", None)  # a tokenizer's; no other processor has an unknown token
    tokens = sum(len(ids) for sequence in sequences.values() for ids in sequence.ids)
    if unknown is not None and tokens:
        report.unknown = sum(ids.count(unknown) for sequence in sequences.values() for ids in sequence.ids) / tokens
    return report, hashes


def pair_cuts(lengths: Any, pairs: list[tuple[int, int]], limit: int, truncation: str = "longest_first") -> dict[str, float]:
    """Which text of each cut pair truncation cuts: ``only_first`` and ``only_second`` always that one;
    longest-first takes tokens off the longer text until the pair fits, so the shorter one is
    whole unless the two must meet.

    Shares of the cut pairs, ``{}`` when none is cut.
    """
    import numpy as np

    first, second = np.array(pairs).reshape(-1, 2).T
    excess = lengths - limit
    cut = excess > 0
    if not cut.any():
        return {}
    if truncation in ONLY:
        return {ONLY[truncation]: 1.0}
    only_first = cut & (first - second >= excess)
    only_second = cut & (second - first >= excess)
    counts = {"first": only_first.sum(), "second": only_second.sum(), "both": (cut & ~only_first & ~only_second).sum()}
    return {side: float(count / cut.sum()) for side, count in counts.items() if count}


def input_hash(texts: tuple[str, ...]) -> bytes:
    """A digest of an example's input texts, case and spacing normalised: equal for duplicates."""
    normalised = "\x1f".join(" ".join((text or "").casefold().split()) for text in texts)
    return hashlib.blake2b(normalised.encode(), digest_size=16).digest()


def tokenizer_limit(tokenizer: Any) -> int | None:
    """The tokenizer's own maximum length, or ``None`` where it sets none (transformers' huge placeholder)."""
    limit = getattr(tokenizer, "model_max_length", None)
    return limit if isinstance(limit, int) and limit < 1_000_000 else None


# -- the schedule -----------------------------------------------------------------------------


def training_settings(task: BaseTask, config: RunConfig) -> dict[str, Any]:
    """``[training]`` over the defaults of the task's ``TrainingArguments`` class."""
    fields = {f.name: f.default for f in dataclasses.fields(task.training_arguments_class) if f.default is not dataclasses.MISSING}
    return {**fields, **config.training}


def steps_of(value: float, steps: int) -> int:
    """A number of steps as the Trainer reads ``warmup_steps``, ``eval_steps`` or ``save_steps``: below 1, a share of the run's ``steps``."""
    return int(value) if value >= 1 else math.ceil(value * steps)


def schedule_of(task: BaseTask, config: RunConfig, train: SplitReport, processes: int) -> Schedule:
    """The optimizer steps, warmup, evaluations, checkpoints and tokens of the run, counted as the Trainer counts them."""
    args = training_settings(task, config)
    batch, accumulation = args["per_device_train_batch_size"], args["gradient_accumulation_steps"]
    batches = math.ceil(math.ceil(train.features / processes) / batch)  # each process's share, in batches
    per_epoch = max(batches // accumulation + int(batches % accumulation > 0), 1)
    steps = args["max_steps"] if args["max_steps"] > 0 else math.ceil(args["num_train_epochs"] * per_epoch)
    schedule = Schedule(
        steps=steps,
        steps_per_epoch=per_epoch,
        epochs=steps / per_epoch,
        batch_size=batch,
        accumulation=accumulation,
        processes=processes,
        warmup=steps_of(args["warmup_steps"], steps),
        learning_rate=args["learning_rate"],
        evaluations_per_epoch=per_epoch_of(args["eval_strategy"], args.get("eval_steps") or args["logging_steps"], per_epoch, steps),
        checkpoints_per_epoch=per_epoch_of(args["save_strategy"], args["save_steps"], per_epoch, steps),
    )
    lengths = train.feature_lengths
    if lengths:
        schedule.grouped = grouping_asked(args)
        batches_of = batch_order(lengths, batch * accumulation, schedule.grouped, train.features)
        scale = train.features / len(lengths)
        tokens = train.feature_tokens or [(1, length) for length in lengths]
        schedule.real_tokens = round(sum(real for _, real in tokens) * scale)
        # Each batch of the sampler's groups, as the collator pads it (the accumulated steps of a group are padded apart).
        steps = [group[start : start + batch] for group in batches_of for start in range(0, len(group), batch)]
        schedule.pad_tokens = round(padding(lengths, steps, tokens) * scale)
    return schedule


def grouping_asked(args: dict[str, Any]) -> bool:
    """Whether ``[training]`` asks for length-grouped training batches."""
    return str(getattr(args["train_sampling_strategy"], "value", args["train_sampling_strategy"])) == "group_by_length"


def feature_lengths(task: BaseTask, config: RunConfig, data: TaskData, name: str, sample: Any, measure: Callable[[Any, RunConfig], Any] | None = None) -> Any:
    """Each feature's length as the task defines it: of the run's whole encoded split, or of ``sample`` encoded (``ftrun check``), lazily for a task that encodes so.

    A sample is encoded a hundred rows at a time, so that a task of large features (images
    encoded eagerly) never holds more than that many at once. ``measure``: another of the task's
    figures of its features in place of ``example_lengths`` (``example_tokens``).
    """
    from datasets import Dataset

    from ftrun.stages.data import encode_batch, encode_lazily

    measure = measure or task.example_lengths
    encoded = getattr(data, name, None)
    if encoded is not None:
        return measure(encoded, config)
    if task.lazy_encoding:  # as a run's split is: the raw rows, encoded as they are read
        return measure(encode_lazily(task, sample, data, config, name), config)
    lengths: list[int] = []
    for start in range(0, len(sample), 100):
        rows = sample.select(range(start, min(start + 100, len(sample))))[:]
        found = measure(Dataset.from_dict(encode_batch(task, rows, data, config, name)), config)
        if found is None:
            return None
        lengths += found
    return lengths


def per_epoch_of(strategy: Any, every: float, steps_per_epoch: int, steps: int) -> float | None:
    """How often an evaluation or a checkpoint strategy acts per epoch; ``None`` for ``best``."""
    strategy = str(getattr(strategy, "value", strategy))
    if strategy == "no":
        return 0.0
    if strategy == "epoch":
        return 1.0
    if strategy == "steps":
        return steps_per_epoch / max(steps_of(every, steps), 1)
    return None


def batch_order(lengths: list[int], batch: int, grouped: bool, examples: int | None = None) -> list[list[int]]:
    """The training batches of a sample of a split of ``examples`` (default: the sample's size), as indices: length-grouped as the Trainer's sampler makes them, or random."""
    order = list(range(len(lengths)))
    random.Random(0).shuffle(order)
    if grouped:
        # transformers' LengthGroupedSampler (get_length_grouped_indices): mega-batches of 50
        # batches, or fewer so that the split makes 4 of them, each sorted by length.
        mega = max(min((examples or len(lengths)) // (batch * 4), 50), 1) * batch
        order = [i for start in range(0, len(order), mega) for i in sorted(order[start : start + mega], key=lambda i: -lengths[i])]
    return [order[start : start + batch] for start in range(0, len(order), batch)]


def padding(lengths: list[int], batches: list[list[int]], tokens: list[tuple[int, int]]) -> int:
    """The pad tokens of ``batches``, each sequence of a batch padded to its longest (dynamic padding).

    ``tokens``: each example's sequences and their real tokens (one of ``lengths[i]`` tokens, or
    a multiple-choice example's choices, each padded to the batch's longest too).
    """
    return sum(max(lengths[i] for i in batch) * sum(tokens[i][0] for i in batch) - sum(tokens[i][1] for i in batch) for batch in batches)


def size_warmup(config: RunConfig, steps: int) -> tuple[RunConfig, str | None]:
    """The config with a default warmup longer than ``WARMUP_SHARE`` of the run cut to that share, and a note saying so.

    Only a warmup that came from the defaults: a value the manifest or ``--set`` gave is the
    user's and is kept (and warned about when it is long). The share goes into the effective
    manifest too, so that ``ftrun --manifest ftrun.toml`` runs the same schedule again.
    """
    warmup = config.training.get("warmup_steps", 0)
    if "warmup_steps" not in config.training_defaults or steps_of(warmup, steps) <= WARMUP_SHARE * steps:
        return config, None
    sized = {"warmup_steps": WARMUP_SHARE}
    note = (
        f"warmup {steps_of(WARMUP_SHARE, steps)} steps ({WARMUP_SHARE:.0%} of the run's {steps}, not the default's {warmup:g}, "
        f"which is longer than {WARMUP_SHARE:.0%}; set training.warmup_steps to choose)"
    )
    return dataclasses.replace(config, training={**config.training, **sized}, manifest=merge(config.manifest, {"training": sized})), note


# -- the checks: each adds the findings of one kind ---------------------------------------------


def source_key(config: RunConfig, name: str) -> str:
    """The ``[data]`` key that names where a split comes from."""
    return f"data.{name}_file" if getattr(config.data, f"{name}_file") else "data.dataset"


def check_warmup(report: Preflight) -> None:
    schedule = report.schedule
    if schedule.warmup and schedule.warmup >= LONG_WARMUP * schedule.steps:
        reach = "never reaches" if schedule.warmup >= schedule.steps else "reaches only late"
        report.warn(
            "training.warmup_steps",
            f"{schedule.warmup} warmup steps are {schedule.warmup / schedule.steps:.0%} of the run's {schedule.steps}: the learning rate "
            f"{reach} its peak ({schedule.learning_rate:g}); about {WARMUP_SHARE:.0%} of the steps ({steps_of(WARMUP_SHARE, schedule.steps)}) is usual",
        )


def check_grouping(report: Preflight) -> None:
    """Length grouping asked for in the manifest where the task's examples have no length: said, not silently ignored."""
    config = report.config
    asked = "train_sampling_strategy" in config.training and "train_sampling_strategy" not in config.training_defaults
    if asked and grouping_asked(config.training) and report.splits["train"].feature_lengths is None:
        report.warn(
            "training.train_sampling_strategy",
            f"group_by_length has no effect: task {config.task}'s inputs have no length to group by, so batches are drawn at random",
        )


def check_truncation(report: Preflight) -> None:
    for sequence, lengths in report.splits["train"].lengths.items():
        if lengths.limit and lengths.truncated > MOST_TRUNCATED:
            report.warn(
                lengths.key,
                f"{lengths.truncated:.0%} of the train split's {sequence} are longer than {lengths.limit} tokens and are cut "
                f"(median {lengths.percentiles['p50']}, 90th percentile {lengths.percentiles['p90']}): {what_is_cut(lengths.cut, lengths.truncation)}",
            )


def what_is_cut(cut: dict[str, float] | None, truncation: str = "longest_first") -> str:
    """What the model never reads of the cut examples: their ends, a pair's longer text's, or the one text truncation cuts."""
    if cut is None:
        return "the model never reads their ends"
    sides = {"first": "the first text", "second": "the second text", "both": "both texts"}
    if truncation in ONLY:
        return f"truncation cuts only {sides[ONLY[truncation]]} of a pair ({truncation}): the model never reads its end, and reads the other whole"
    shares = ", ".join(f"{sides[side]} in {share:.0%}" for side, share in sorted(cut.items(), key=lambda item: -item[1]))
    return f"truncation cuts the longer text of a pair, not the pair's end: the model never reads the end of {shares} of them"


#: The truncation strategies that cut one text of a pair only, and which.
ONLY = {"only_first": "first", "only_second": "second"}


def check_positions(report: Preflight) -> None:
    positions = report.model.get("max_position_embeddings")
    if not positions:  # relative positions (T5): no limit of the model's own
        return
    for sequence, lengths in report.splits["train"].lengths.items():
        if lengths.limit and lengths.limit > positions:
            report.fail(
                lengths.key,
                f"{sequence} are cut at {lengths.limit} tokens, more than the model takes ({positions} positions): set {lengths.key} to {positions} or less",
            )


def check_empty(report: Preflight) -> None:
    for name, split in report.splits.items():
        if split.empty:
            report.warn(
                source_key(report.config, name),
                f"{split.empty} of the {name} split's {split.examples} examples have an empty or whitespace-only input (the first: {split.first_empty})",
            )


def check_overlap(report: Preflight) -> None:
    evaluation = report.splits["eval"]
    if evaluation.in_train and evaluation.in_train > OVERLAP * evaluation.examples:
        report.warn(
            source_key(report.config, "eval"),
            f"{evaluation.in_train} of the eval split's {evaluation.examples} examples ({evaluation.in_train / evaluation.examples:.1%}) "
            "also appear in the train split: the eval score overstates how the model does on new data",
        )


def check_unseen_labels(report: Preflight) -> None:
    unseen = report.splits["eval"].unseen
    if unseen:
        report.warn(
            source_key(report.config, "train"),
            f"the eval split has labels that no train example has, which the model never learns: {', '.join(map(repr, unseen[:10]))}",
        )


def check_eval_size(report: Preflight) -> None:
    evaluation = report.splits["eval"]
    labels = sum((evaluation.labels or {}).values())
    units, what = (labels, "labels") if labels and labels != evaluation.examples else (evaluation.examples, "examples")
    error = 0.5 / math.sqrt(max(units, 1))  # the standard error of a share, at its widest (a share of 0.5)
    if error > STANDARD_ERROR:
        config = report.config
        key = "data.max_eval_samples" if config.data.max_eval_samples else source_key(config, "eval")
        report.warn(
            key,
            f"{units} eval {what} measure {config.metrics.best or 'the best metric'} to about ±{error:.1%} of its range "
            f"(the standard error of a share of them, at one half): differences between epochs or runs under {2 * error:.0%} are noise; "
            "evaluate on more examples",
        )


def usual_learning_rates(model: dict[str, Any], from_scratch: bool) -> tuple[float, float, str]:
    """The learning rates (AdamW) a model of this family and size is usually trained with, and what it is.

    Fine-tuning pretrained encoders: BERT's paper tried 2e-5 to 5e-5, RoBERTa-large 1e-5,
    small models (ELECTRA-small, MiniLM) go up to 3e-4; T5 is fine-tuned at 1e-4 to 1e-3;
    random weights want far more (ftrun's demos train from scratch at 1e-3 to 3e-3).
    """
    from ftrun.stages.tokenizer import T5_FAMILY

    family = model.get("model_type") or "model"
    hidden = model.get("hidden_size") or model.get("d_model") or 0
    if from_scratch:
        return 3e-4, 1e-2, f"a {family} trained from random weights (a model built from a config)"
    if family in T5_FAMILY:
        return 3e-5, 1e-3, f"fine-tuning a pretrained {family}"
    if hidden >= 1024:
        return 5e-6, 5e-5, f"fine-tuning a large pretrained {family} (hidden size {hidden})"
    if hidden and hidden < 512:
        return 1e-5, 3e-4, f"fine-tuning a small pretrained {family} (hidden size {hidden})"
    return 1e-5, 1e-4, f"fine-tuning a pretrained {family}" + (f" (hidden size {hidden})" if hidden else "")


def check_learning_rate(report: Preflight) -> None:
    rate = report.schedule.learning_rate
    low, high, what = usual_learning_rates(report.model, report.config.model.config is not None)
    if rate > FAR * high or rate < low / FAR:
        side = "above" if rate > high else "below"
        report.warn("training.learning_rate", f"{rate:g} is far {side} the usual {low:g} to {high:g} for {what}")


#: The generic checks, in the order their findings are shown.
CHECKS = (
    check_positions,
    check_warmup,
    check_grouping,
    check_truncation,
    check_empty,
    check_overlap,
    check_unseen_labels,
    check_eval_size,
    check_learning_rate,
)


def remote_code_warning(config: RunConfig) -> str:
    source = config.model.name or getattr(config.model, "tokenizer", None)
    return f"{config.where('model.trust_remote_code')} is true: code from {source or 'the model'}'s repository may run on this machine"


# -- the report in the terminal -----------------------------------------------------------------


def show(report: Preflight, console: Console) -> None:
    """The report as rich tables (``ftrun check``): the splits side by side, then the schedule."""
    from rich.table import Table

    splits = Table(title="Data", title_justify="left", show_header=True)
    splits.add_column("")
    for name in report.splits:
        splits.add_column(name, justify="right")
    for label, cells in split_rows(report):
        splits.add_row(label, *cells)
    sampled = [f"{split.tokenized:,} of the {split.examples:,} {name} examples" for name, split in report.splits.items() if split.tokenized < split.examples]
    if sampled:
        splits.caption = f"token figures from a random sample of {' and '.join(sampled)}, to be quick"
    console.print(splits)
    table = Table(title="Schedule", title_justify="left", show_header=False)
    table.add_column("")
    table.add_column("")
    for label, value in schedule_rows(report):
        table.add_row(label, value)
    console.print(table)


def split_rows(report: Preflight) -> list[tuple[str, list[str]]]:
    """The rows of the data table: a label and one cell per split."""
    splits = list(report.splits.values())

    def row(label: str, cell: Any) -> tuple[str, list[str]]:
        return label, [cell(split) for split in splits]

    rows = [
        row("examples", lambda s: f"{s.examples:,}"),
        row("features", lambda s: f"{'≈ ' if s.features_estimated else ''}{s.features:,}"),
    ]
    if any(s.labels is not None for s in splits):
        rows.append(row("labels", label_cell))
        rows.append(row("imbalance (most/least)", lambda s: f"{s.imbalance:.1f}" if s.imbalance else "—"))
    for sequence in dict.fromkeys(name for s in splits for name in s.lengths):
        rows.append(
            row(
                f"{sequence}: tokens p50/90/99/max",
                lambda s: "/".join(f"{v:,}" for v in s.lengths[sequence].percentiles.values()) if sequence in s.lengths else "—",
            )
        )
        rows.append(row(f"{sequence}: cut", lambda s: truncated_cell(s.lengths.get(sequence))))
    if any(s.empty is not None for s in splits):
        rows.append(row("empty inputs", lambda s: "—" if s.empty is None else f"{s.empty:,}"))
        rows.append(row("duplicate inputs", lambda s: "—" if s.duplicates is None else f"{s.duplicates:,}"))
        rows.append(row("inputs also in train", lambda s: "—" if s.in_train is None else f"{s.in_train:,} ({s.in_train / max(s.examples, 1):.1%})"))
    if any(s.labels is not None for s in splits):
        rows.append(row("labels not in train", lambda s: ", ".join(s.unseen[:5]) + (" ..." if len(s.unseen) > 5 else "") if s.unseen else "—"))
    if any(s.unknown is not None for s in splits):
        rows.append(row("unknown tokens", lambda s: "—" if s.unknown is None else f"{s.unknown:.2%}"))
    for figure in dict.fromkeys(name for s in splits for name in s.figures):
        rows.append(row(figure, lambda s: s.figures.get(figure, "—")))
    return rows


def label_cell(split: SplitReport) -> str:
    if split.labels is None:
        return "—"
    shown = [f"{label} {count:,}" for label, count in list(split.labels.items())[:6]]
    return ", ".join(shown) + (f" (+{len(split.labels) - 6} more)" if len(split.labels) > 6 else "")


def truncated_cell(lengths: Lengths | None) -> str:
    if lengths is None:
        return "—"
    if lengths.limit is None:
        return "no limit"
    return f"{lengths.truncated:.1%} at {lengths.limit:,}"


def schedule_rows(report: Preflight) -> list[tuple[str, str]]:
    s = report.schedule
    processes = f" × {s.processes} processes" if s.processes > 1 else ""
    accumulation = f" × {s.accumulation} accumulated" if s.accumulation > 1 else ""
    rows = [
        ("optimizer steps", f"{s.steps:,}: {s.epochs:g} epochs × {s.steps_per_epoch:,} steps (batches of {s.batch_size}{processes}{accumulation})"),
        ("warmup", f"{s.warmup:,} steps ({s.warmup / max(s.steps, 1):.0%} of the run)" + (" — sized to the run" if report.sized else "")),
        ("learning rate", f"{s.learning_rate:g}"),
        ("evaluations per epoch", "—" if s.evaluations_per_epoch is None else f"{s.evaluations_per_epoch:g}"),
        ("checkpoints per epoch", "at each new best" if s.checkpoints_per_epoch is None else f"{s.checkpoints_per_epoch:g}"),
    ]
    if s.real_tokens is not None:
        share = s.pad_tokens / max(s.real_tokens + s.pad_tokens, 1)
        rows.append(("tokens per epoch (estimated)", f"{s.real_tokens:,} real + {s.pad_tokens:,} pad ({share:.0%} padding)"))
        rows.append(("training batches", "length-grouped" if s.grouped else "random order"))
    else:
        rows.append(("training batches", f"random order: {report.config.task}'s inputs have no length to group by"))
    return rows
