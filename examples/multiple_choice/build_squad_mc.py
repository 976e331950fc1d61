"""Build 4-choice questions from SQuAD: each question's answer and the answers of three other questions of the same article, shuffled.

The distractors are answers to other questions about the same Wikipedia article, so they are
of the right kind (names, dates, places of that article) and only reading the context tells
them apart. The rows are in the layout the multiple-choice task reads by default: ``id``,
``title``, ``context``, ``question``, ``choices`` (a list of four texts) and ``label`` (the
index of the right one).

    python examples/multiple_choice/build_squad_mc.py ../shared/data/squad/train.jsonl squad-mc-train.jsonl
    python examples/multiple_choice/build_squad_mc.py ../shared/data/squad/validation.jsonl squad-mc-eval.jsonl

A question whose article has fewer than three other distinct answers is left out.
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
from collections import defaultdict
from pathlib import Path
from typing import Any

CHOICES = 4


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def build(rows: list[dict[str, Any]], seed: int = 0) -> list[dict[str, Any]]:
    """The multiple-choice questions of SQuAD ``rows``, in their order; the same rows and seed give the same questions."""
    rng = random.Random(seed)
    by_article = defaultdict(list)
    for row in rows:
        by_article[row["title"]].append(row["answers"]["text"][0].strip())
    questions = []
    for row in rows:
        answer = row["answers"]["text"][0].strip()
        # Other answers of the article, each text once and none equal to this answer (case aside).
        others = list({text.casefold(): text for text in by_article[row["title"]] if text.casefold() != answer.casefold()}.values())
        if len(others) < CHOICES - 1:
            continue
        choices = [answer, *rng.sample(others, CHOICES - 1)]
        rng.shuffle(choices)
        questions.append(
            {
                "id": row["id"],
                "title": row["title"],
                "context": row["context"],
                "question": row["question"].strip(),
                "choices": choices,
                "label": choices.index(answer),
            }
        )
    return questions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="SQuAD rows as JSON lines (the Hub's squad layout), optionally gzipped")
    parser.add_argument("target", type=Path, help="where to write the questions (JSON lines; gzipped if it ends in .gz)")
    parser.add_argument("--limit", type=int, default=None, help="keep only the first N questions")
    parser.add_argument("--seed", type=int, default=0, help="seed of the distractors and the order of the choices")
    args = parser.parse_args()
    questions = build(read_jsonl(args.source), args.seed)[: args.limit]
    opener = gzip.open if args.target.suffix == ".gz" else open
    with opener(args.target, "wt", encoding="utf-8") as handle:
        for question in questions:
            handle.write(json.dumps(question, ensure_ascii=False) + "\n")
    print(f"{len(questions)} questions written to {args.target}")


if __name__ == "__main__":
    main()
