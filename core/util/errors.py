"""The one exception type for problems the user can fix."""


class FtrunError(Exception):
    """Bad input (manifest, data, model path, plugin): shown as one line, exit code 2.

    The message names what is wrong and where, e.g.
    ``run.toml: training.num_epochs: unknown key (did you mean num_train_epochs?)``.
    """

    exit_code = 2
    #: The word after ``ftrun:`` on the line that reports it.
    label = "error"


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message: library errors are often pages long."""
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]
