"""One error style for every command: a user's mistake is one line on stderr and exit status 2.

Library code raises `UserError` (or a subclass) for problems with what the user gave: an option, a file,
a sequence, a checkpoint. The entry points wrap their task function with `user_errors("mdgen.NAME")`,
which prints `mdgen.NAME: error: <message>` and exits 2 instead of a traceback. Every other exception
is a bug and keeps its traceback. `MDGEN_DEBUG=1` re-raises user errors too, with their traceback.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from typing import TypeVar

DEBUG_ENV = "MDGEN_DEBUG"
USER_ERROR_EXIT_STATUS = 2

R = TypeVar("R")


# Import names of the optional dependencies -> the extra that installs them (pyproject.toml)
OPTIONAL_PACKAGES = {"openmm": "md", "pdbfixer": "md"}


class UserError(ValueError):
    """A problem with the user's input, reported as one line naming the option or file and the problem.

    A subclass of ValueError so that callers catching ValueError (and earlier tests) keep working.
    """


class MissingExtraError(UserError):
    """An optional dependency (OpenMM, PDBFixer) that this command needs is not installed."""


def missing_extra(error: ModuleNotFoundError) -> MissingExtraError | None:
    """The one-line error naming the extra to install, when `error` is a missing optional package."""
    package = (error.name or "").split(".")[0]
    extra = OPTIONAL_PACKAGES.get(package)
    if extra is None:
        return None
    return MissingExtraError(
        f"this needs the Python package {package!r}, which is not installed: it comes with the [{extra}] "
        f"extra (pip install 'mdgen[{extra}]'; make install includes it)"
    )


def debug_enabled() -> bool:
    return os.environ.get(DEBUG_ENV, "").strip() not in ("", "0", "false", "no")


def report_user_error(command: str, error: BaseException) -> None:
    """Print `command: error: message` on one line of stderr (newlines inside the message are folded)."""
    message = " ".join(str(error).split()) or type(error).__name__
    print(f"{command}: error: {message}", file=sys.stderr, flush=True)


def warn_deprecated(command: str, old: str, new: str) -> None:
    """One line on stderr, `command: warning: OLD is deprecated, use NEW`; the old name still works."""
    print(
        f"{command}: warning: {old} is deprecated, use {new} (the old name still works)",
        file=sys.stderr,
        flush=True,
    )


def user_errors(command: str) -> Callable[[Callable[..., R]], Callable[..., R]]:
    """Decorate an entry point's task function: `UserError` -> one line on stderr, exit status 2.

    So is a missing optional package (OpenMM: `mdgen[md]`), imported lazily by the code that needs it.
    """

    def decorate(task_function: Callable[..., R]) -> Callable[..., R]:
        @functools.wraps(task_function)
        def wrapped(*args, **kwargs) -> R:
            try:
                return task_function(*args, **kwargs)
            except UserError as error:
                if debug_enabled():
                    raise
                report_user_error(command, error)
                sys.exit(USER_ERROR_EXIT_STATUS)
            except ModuleNotFoundError as error:  # an optional extra (`[md]`) not installed
                extra_error = missing_extra(error)
                if extra_error is None or debug_enabled():
                    raise
                report_user_error(command, extra_error)
                sys.exit(USER_ERROR_EXIT_STATUS)

        return wrapped

    return decorate
