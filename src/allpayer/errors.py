"""User-facing errors.

Every error a user can cause (a bad file, a bad contract term, a bad argument) is raised as an
`AllpayerError`. The CLI shows it as one line and exits non-zero; the API turns it into a
problem+json response. Anything else is a bug and is reported as such.
"""

from __future__ import annotations


class AllpayerError(Exception):
    """An error caused by input, terms or arguments, with a message meant for the user."""

    exit_code = 2


class InputFileError(AllpayerError):
    """An input file cannot be read at all, or lacks a required column. Stops the load."""

    def __init__(self, path: str, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class TermsError(AllpayerError):
    """A contract-terms file is invalid. Names the file and the key path."""

    def __init__(self, path: str, key: str, problem: str, others: tuple[tuple[str, str], ...] = ()):
        self.path = str(path)
        self.key = key
        self.problem = problem
        self.others = others  # (key, problem) of the file's other problems, for `terms check` to list
        where = f"{self.path}: {key}" if key else self.path
        super().__init__(f"{where}: {problem}")


class RunError(AllpayerError):
    """A run cannot start or finish (missing tables, bad period, locked database...)."""
