"""The one exception type users see for bad input: a single line naming the problem and the fix."""


class MLANetInputError(ValueError):
    """Bad input (data file, configuration, checkpoint). str(err) is one line: where, what, and how to fix it."""

    def __init__(self, where: str, problem: str, fix: str):
        self.where, self.problem, self.fix = where, problem, fix
        super().__init__(f"{where}: {problem}. Fix: {fix}")
