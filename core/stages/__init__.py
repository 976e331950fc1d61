"""The stages of a run, the same for every task: data, head, metrics, trainer, predict, outputs.

A stage receives the task and calls its methods; it names the task's type only in annotations.
"""
