"""Errors a user can cause. Each carries one message naming the culprit and the fix."""

from __future__ import annotations


class StudyError(Exception):
    """A problem with the user's input or environment; the CLI prints it without a traceback."""

    exit_code = 1


class ParamsError(StudyError):
    """An invalid params file: unknown key, wrong type, unknown language or task."""

    exit_code = 2


class DataError(StudyError):
    """A data file or dataset that is missing, malformed or unlabelled where labels are needed."""


class HubUnavailableError(StudyError):
    """A model or dataset that must come from the Hugging Face hub, which cannot be reached."""


class StageNotReadyError(StudyError):
    """A stage was started before the stages it needs have completed."""


class UnitsFailed(StudyError):
    """Units of a stage failed; the others completed and are kept, and a rerun retries the failed."""
