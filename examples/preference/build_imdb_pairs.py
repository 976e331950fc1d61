"""Preference pairs from IMDB reviews, for the preference (DPO) task: a prompt, a chosen and a rejected completion.

Each pair takes one positive and one negative review: the prompt is the positive review's
first words, the chosen completion the words that follow them, the rejected completion as many
words of the negative review. A model tuned on the pairs learns to continue a review favourably.
Training pairs come from the train file, held-out pairs from the dev file (no review in both).

    python examples/preference/build_imdb_pairs.py ../shared/data/imdb pairs/ --train 2000 --eval 200

writes ``pairs/train.jsonl`` and ``pairs/eval.jsonl`` (fields ``prompt``, ``chosen``, ``rejected``).
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
from collections.abc import Iterator
from pathlib import Path


def reviews(path: Path) -> Iterator[tuple[list[str], int]]:
    """Each review of an IMDB jsonl(.gz) file as words (its ``<br />`` tags removed) and its label (1: positive)."""
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        for line in handle:
            row = json.loads(line)
            yield re.sub(r"<br\s*/?>", " ", row["text"]).split(), row["label"]


def pairs(path: Path, count: int, prompt_words: int, completion_words: int) -> list[dict[str, str]]:
    """``count`` pairs of ``path``'s reviews, in the file's (shuffled) order: the i-th positive review with the i-th negative one."""
    long_enough = prompt_words + completion_words
    positive, negative = [], []
    for words, label in reviews(path):
        if len(words) >= long_enough:
            (positive if label == 1 else negative).append(words)
        if min(len(positive), len(negative)) >= count:
            break
    if min(len(positive), len(negative)) < count:
        raise SystemExit(f"{path}: only {min(len(positive), len(negative))} pairs of reviews of {long_enough} words or more, not {count}")
    out = []
    for good, bad in zip(positive[:count], negative[:count]):
        out.append(
            {
                "prompt": " ".join(good[:prompt_words]),
                "chosen": " " + " ".join(good[prompt_words:long_enough]),
                "rejected": " " + " ".join(bad[prompt_words:long_enough]),
            }
        )
    return out


def write(rows: list[dict[str, str]], path: Path) -> None:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wt", encoding="utf-8") as handle:
        handle.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("imdb", type=Path, help="the folder of IMDB's train.jsonl.gz and dev.jsonl.gz (../shared/data/imdb)")
    parser.add_argument("out", type=Path, help="where train.jsonl and eval.jsonl go")
    parser.add_argument("--train", type=int, default=2000, help="training pairs (from train.jsonl.gz)")
    parser.add_argument("--eval", type=int, default=200, help="held-out pairs (from dev.jsonl.gz)")
    parser.add_argument("--prompt-words", type=int, default=6)
    parser.add_argument("--completion-words", type=int, default=24)
    parser.add_argument("--suffix", default=".jsonl", help="file suffix: .jsonl, or .jsonl.gz for compressed files")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for name, source, count in (("train", "train.jsonl.gz", args.train), ("eval", "dev.jsonl.gz", args.eval)):
        rows = pairs(args.imdb / source, count, args.prompt_words, args.completion_words)
        write(rows, args.out / f"{name}{args.suffix}")
        print(f"{args.out / f'{name}{args.suffix}'}: {len(rows)} pairs")


if __name__ == "__main__":
    main()
