"""The two kinds of problem a learner or an author can act on.

Anything else that goes wrong is a bug in the kit and keeps its traceback.
"""

from __future__ import annotations


class LabError(Exception):
    """A problem with what the user asked for or with this machine: say what, and what to do."""

    exit_code = 2

    def __init__(self, what: str, todo: str = ""):
        super().__init__(what)
        self.what, self.todo = what, todo

    def __str__(self) -> str:
        return f"{self.what}\n{self.todo}" if self.todo else self.what


class UsageProblem(LabError):
    """The command was used wrongly (unknown lab, no workspace, non-empty folder)."""


class EnvironmentProblem(LabError):
    """This machine lacks something grading needs (PostgreSQL, redis-server, an engine)."""


class StageFailure(Exception):
    """The learner's service could not be prepared or served: a stage of the pipeline failed.

    Not a kit error: it becomes the run's verdict, with the log tail and what to try.
    """

    def __init__(self, stage: str, message: str, log_tail: str = "", todo: str = ""):
        super().__init__(f"{stage}: {message}")
        self.stage, self.message, self.log_tail, self.todo = stage, message, log_tail, todo
