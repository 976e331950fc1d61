"""``[search]``: the table ``ftrun tune`` reads, validated as every manifest table is."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, model_validator

from ftrun.manifest.config import Section

if TYPE_CHECKING:
    import optuna


class Param(Section):
    """One dimension of the search: a range (``low``, ``high``, ``log``, ``step``) or a list of ``choices``."""

    low: int | float | None = Field(None, description="Lowest value of a range (ints: an integer range).")
    high: int | float | None = Field(None, description="Highest value of a range.")
    log: bool = Field(False, description="Sample the range on a log scale (learning rates).")
    step: int | float | None = Field(None, gt=0, description="Sample the range in steps of this size.")
    choices: list[int | float | str | bool] | None = Field(None, min_length=1, description="Sample one of these values.")

    @model_validator(mode="after")
    def _range_or_choices(self) -> Param:
        if self.choices is not None:
            if self.low is not None or self.high is not None:
                raise ValueError("give a range (low, high) or choices, not both")
            return self
        if self.low is None or self.high is None:
            raise ValueError("needs low and high, or choices")
        if self.low >= self.high:
            raise ValueError(f"low ({self.low}) must be below high ({self.high})")
        if self.log and self.low <= 0:
            raise ValueError(f"a log scale needs low > 0, got {self.low}")
        if self.log and self.step is not None:
            raise ValueError("give log or step, not both")
        return self

    def suggest(self, trial: optuna.Trial, name: str) -> Any:
        if self.choices is not None:
            return trial.suggest_categorical(name, self.choices)
        if isinstance(self.low, int) and isinstance(self.high, int) and not isinstance(self.step, float):
            return trial.suggest_int(name, self.low, self.high, step=self.step or 1, log=self.log)
        return trial.suggest_float(name, self.low, self.high, step=self.step, log=self.log)


class SearchTable(Section):
    """``[search]``: what ``ftrun tune`` searches over, for how long, and by which metric."""

    space: dict[str, Param] = Field(
        min_length=1, description='The manifest keys to search over, as --set names them: {"training.learning_rate" = {low = 1e-5, high = 1e-3, log = true}}.'
    )
    trials: int = Field(20, gt=0, description="Trials to finish (complete or pruned), counted over the whole study.")
    metric: str | None = Field(None, description="Eval metric to optimise, without eval_; default: the task's best metric (metrics.best).")
    direction: Literal["maximize", "minimize"] | None = Field(None, description="Default: as the metric's (maximize accuracy, minimize loss).")
    timeout: float | None = Field(None, gt=0, description="Start no trial after this many seconds.")
    seed: int = Field(42, description="Seed of the sampler.")
    sampler: Literal["tpe", "random"] = Field("tpe", description="Optuna's TPE sampler, or random search.")
    pruner: Literal["median", "successive-halving", "none"] = Field(
        "median", description="Stop a trial whose eval metric is worse than the others' at the same step."
    )
    keep_pruned: bool = Field(False, description="Keep a pruned trial's folder (default: removed).")
