import numpy as np
from pydantic import Field
from transformers import AutoModelForSequenceClassification

from ftrun import Metrics, Task, TextDataConfig, hookimpl, require_columns

#: The ftrun versions this plugin is written for; ftrun refuses to load it into any other.
ftrun_requires = ">=0.1,<0.2"


class RegressionData(TextDataConfig):
    """[data]: ftrun's keys (files, splits, subsets, max_length) plus this task's columns."""

    text_column: str = Field("text", description="Column holding the text.")
    target_column: str = Field("target", description="Column holding the number to predict.")


class TextRegressionTask(Task):
    name = "text-regression"
    description = "predict a number from a text"
    pipeline_tag = "text-classification"  # the Hub's tag, and the transformers pipeline that predicts
    auto_model = AutoModelForSequenceClassification
    data_config = RegressionData

    def check_data(self, splits, config):
        columns = {"text_column": config.data.text_column, "target_column": config.data.target_column}
        require_columns(splits.train, columns, config, "train")
        require_columns(splits.eval, columns, config, "eval")
        return None  # no label names

    def text_of(self, split, config):
        return split[config.data.text_column]  # what a tokenizer is trained on, for a model built from a config

    def encode(self, batch, data, config, split):
        encoded = data.tokenizer(batch[config.data.text_column], truncation=True, max_length=config.data.max_length)
        encoded["labels"] = [float(value) for value in batch[config.data.target_column]]
        return encoded

    def head_kwargs(self, data, config):
        return {"num_labels": 1, "problem_type": "regression"}

    def build_metrics(self, config, data):
        def compute(prediction):
            errors = prediction.predictions.reshape(-1) - prediction.label_ids
            return {"mse": float(np.mean(errors**2))}

        return Metrics(compute=compute, best="mse", greater_is_better=False)

    def format_prediction(self, prediction):
        return f"{prediction['score']:.3f}"


@hookimpl
def ftrun_register_tasks(register):
    register(TextRegressionTask())
