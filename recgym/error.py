"""The exceptions recgym raises: one hierarchy, so callers can catch :class:`RecGymError`."""

from __future__ import annotations


class RecGymError(Exception):
    """Base class of every error raised by recgym."""


class FetchError(RecGymError):
    """An artifact could not be obtained from any of its sources."""


class ChecksumError(FetchError):
    """A downloaded or cached file does not have the expected digest."""


class UnknownNameError(RecGymError, KeyError):
    """A dataset, model, retriever or backend name is not registered."""

    def __str__(self) -> str:  # KeyError would repr() the message; show it as written
        return str(self.args[0]) if self.args else ""


class DataFormatError(RecGymError, ValueError):
    """Input data does not have the expected layout (columns, types, files)."""


class ModelLoadError(RecGymError):
    """A language model could not be resolved or loaded."""


class CacheWarning(UserWarning):
    """A cached file failed its check (missing, truncated, corrupted); recgym does not load it
    and fetches or rebuilds it instead. The message names the file."""


def one_line(exc: BaseException) -> str:
    """``exc`` as one line for a command line: its message (a recgym error, whose message is
    written for users) or ``Type: message`` (another exception), whitespace collapsed."""
    text = " ".join(str(exc).split())
    if isinstance(exc, RecGymError) and text:
        return text
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
