"""ftrun's Trainers evaluate in batches sorted by length, and restore a checkpoint whole or not at all."""

import datasets
import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import (
    AutoModelForSeq2SeqLM,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    DataCollatorWithPadding,
    Seq2SeqTrainingArguments,
    TrainingArguments,
)

import ftrun
import ftrun.stages.training

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


def tiny_vit():
    from transformers import AutoConfig, AutoModelForImageClassification

    settings = {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 64, "image_size": 16, "patch_size": 8}
    return AutoModelForImageClassification.from_config(AutoConfig.for_model("vit", **settings))


def test_restore_reads_a_checkpoint_under_the_names_its_family_saves_it_under(tmp_path):
    # ViT saves 16 of its 24 tensors under other names than its modules': every one comes back.
    saved = tiny_vit()
    saved.save_pretrained(tmp_path)
    model = tiny_vit()
    ftrun.stages.training.restore(model, tmp_path)
    assert all(torch.equal(tensor, saved.state_dict()[name]) for name, tensor in model.state_dict().items())


@pytest.mark.parametrize(
    "spoil, words",
    [
        (lambda tensors: tensors.pop("vit.encoder.layer.0.output.dense.bias"), ("missing 1 tensor (vit.layers.0.mlp.fc2.bias)",)),
        (lambda tensors: tensors.update({"vit.extra.weight": torch.zeros(2)}), ("unexpected 1 tensor (vit.extra.weight)",)),
        (lambda tensors: tensors.update({"classifier.bias": torch.zeros(3)}), ("missing 1 tensor (classifier.bias (of another shape))",)),
    ],
    ids=["missing", "unexpected", "another-shape"],
)
def test_restore_refuses_a_checkpoint_that_is_not_the_model_whole(tmp_path, spoil, words):
    tiny_vit().save_pretrained(tmp_path)
    tensors = load_file(tmp_path / "model.safetensors")
    spoil(tensors)
    save_file(tensors, tmp_path / "model.safetensors", metadata={"format": "pt"})
    model = tiny_vit()
    before = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    with pytest.raises(ftrun.FtrunError) as error:
        ftrun.stages.training.restore(model, tmp_path)
    assert str(error.value).startswith(f"{tmp_path}: cannot restore the model whole from it: ")
    for word in words:
        assert word in str(error.value)
    assert all(torch.equal(tensor, before[name]) for name, tensor in model.state_dict().items()), "nothing loaded"
