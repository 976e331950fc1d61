"""``ftrun predict --input FILE --output OUT``: every row of a file, in order, for every built-in task; bad rows named or skipped."""

import json

import pytest
from test_eval import trained

from ftrun.testing import files_under, write_jsonl

#: A file's rows for each task, in the columns its run's [data] names, and the key of a prediction.
ROWS = {
    "text-classification": ([{"text": "A wonderful film, truly."}, {"text": "Dull."}, {"text": "I did not like it at all, not one bit."}], "label"),
    "ner": ([{"tokens": ["Angela", "Merkel", "visited", "Paris", "."]}, {"tokens": ["Hello"]}], "entities"),
    "question-answering": ([{"question": "Who came?", "context": "Anna came home late."}, {"question": "Where?", "context": "In Paris."}], "answer"),
    "translation": (
        [{"translation": {"en": "A dog runs.", "de": "Ein Hund rennt."}}, {"translation": {"en": "Two men talk on a bench.", "de": ""}}],
        "translation",
    ),
    "summarization": ([{"document": "Shares rose on Monday in London.", "summary": ""}, {"document": "Rain fell.", "summary": ""}], "summary_text"),
    "causal-lm": ([{"text": "A man in a"}, {"text": "Two dogs"}], "generated_text"),
}


@pytest.mark.parametrize("task", sorted(ROWS))
def test_every_row_is_predicted_in_order_as_ftrun_predict_does_one(ftrun_cli, ftrun_manifest, tmp_path, task):
    model = trained(ftrun_cli, ftrun_manifest, tmp_path, task)
    rows, key = ROWS[task]
    source = write_jsonl(tmp_path / "rows.jsonl", rows * 3)  # several rows of each length: sorted for the batches, written back in order
    target = tmp_path / "predictions.jsonl"
    result = ftrun_cli("predict", "--model", model, "--input", source, "--output", target)
    assert result.code == 0, result
    written = [json.loads(line) for line in target.read_text().splitlines()]
    assert len(written) == len(rows) * 3 and all(key in record for record in written)
    assert [record["input"] for record in written] == [record["input"] for record in written[: len(rows)]] * 3
    assert written[: len(rows)] == written[len(rows) : 2 * len(rows)]  # the same row gives the same prediction wherever its batch puts it
    assert f"{len(rows) * 3} of {len(rows) * 3} rows of {source} predicted into {target}" in result.err


def test_a_bad_row_is_one_line_or_skipped_and_counted(ftrun_cli, ftrun_manifest, tmp_path):
    model = trained(ftrun_cli, ftrun_manifest, tmp_path, "text-classification")
    source = write_jsonl(tmp_path / "rows.jsonl", [{"text": "Good."}, {"text": None}, {"text": "Bad."}, {"text": 3}])
    target = tmp_path / "out.jsonl"
    before = files_under(tmp_path)
    failed = ftrun_cli("predict", "--model", model, "--input", source, "--output", target)
    line = failed.err.strip().splitlines()[-1]
    assert failed.code == 2 and line == f"ftrun: error: --input: {source}: row 2: expected a text, or a table with a text and an optional text_pair, got None"
    assert files_under(tmp_path) == before  # nothing written
    skipped = ftrun_cli("predict", "--model", model, "--input", source, "--output", target, "--skip-bad")
    assert skipped.code == 0, skipped
    assert [json.loads(line)["input"] for line in target.read_text().splitlines()] == ["Good.", "Bad."]
    assert "2 of 4 rows" in skipped.err and "2 bad rows skipped" in skipped.err
    again = ftrun_cli("predict", "--model", model, "--input", source, "--output", target)
    assert again.code == 2 and "exists: choose another, or pass --overwrite" in again.err
    renamed = write_jsonl(tmp_path / "renamed.jsonl", [{"review": "Fine."}])
    other = ftrun_cli("predict", "--model", model, "--input", renamed, "--output", tmp_path / "renamed-out.jsonl", "--set", "data.text_column=review")
    assert other.code == 0, other
    missing = ftrun_cli("predict", "--model", model, "--input", renamed, "--output", tmp_path / "x.jsonl", "--skip-bad")
    assert missing.code == 2 and "no row could be read" in missing.err
