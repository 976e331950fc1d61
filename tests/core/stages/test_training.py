"""ftrun's Trainers evaluate in batches sorted by length."""

import datasets
import pytest
from transformers import (
    AutoModelForSeq2SeqLM,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    DataCollatorWithPadding,
    Seq2SeqTrainingArguments,
    TrainingArguments,
)

import ftrun

LENGTHS = [5, 30, 12, 30, 3, 18, 25, 7, 9, 14, 2, 21]


@pytest.mark.parametrize(
    "trainer_class, arguments_class, auto_model",
    [
        (ftrun.Trainer, TrainingArguments, AutoModelForSequenceClassification),
        (ftrun.Seq2SeqTrainer, Seq2SeqTrainingArguments, AutoModelForSeq2SeqLM),
    ],
)
def test_eval_batches_are_sorted_longest_first(trainer_class, arguments_class, auto_model, ftrun_tiny_bert, ftrun_tiny_t5, tmp_path):
    directory = ftrun_tiny_t5 if auto_model is AutoModelForSeq2SeqLM else ftrun_tiny_bert
    tokenizer = AutoTokenizer.from_pretrained(directory)
    dataset = datasets.Dataset.from_dict({"input_ids": [[7] * n for n in LENGTHS], "labels": [0] * len(LENGTHS)})
    # ftrun's default sampling, which alone would only group lengths within random megabatches.
    args = arguments_class(output_dir=str(tmp_path), per_device_eval_batch_size=4, train_sampling_strategy="group_by_length", report_to="none")
    trainer = trainer_class(
        model=auto_model.from_pretrained(directory),
        args=args,
        eval_dataset=dataset,
        processing_class=tokenizer,
        data_collator=DataCollatorWithPadding(tokenizer),
    )
    lengths = [batch["attention_mask"].sum(dim=1).tolist() for batch in trainer.get_eval_dataloader()]
    assert lengths == [[30, 30, 25, 21], [18, 14, 12, 9], [7, 5, 3, 2]]
