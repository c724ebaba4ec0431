"""The one exception tree of kbp_notebook.

::

    KbpError                  anything this package raises on purpose
    ├── KbpConnectionError    a cluster or Prometheus could not be reached
    ├── KbpInputError         input that cannot be read or does not fit a schema
    └── KbpDataError          too little or inconsistent data for an analysis

Every message names what was wrong (the address, the line, the column) and
says what to do about it. Extra context is kept on the exception as
attributes so callers need not parse the message.
"""

from __future__ import annotations

from typing import Any

__all__ = ["KbpConnectionError", "KbpDataError", "KbpError", "KbpInputError"]


class KbpError(Exception):
    """Base class of every error kbp_notebook raises on purpose.

    Parameters
    ----------
    message
        What went wrong and how to fix it.
    **context
        Named facts about the failure (``address=``, ``query=``, ``line=``,
        ``column=``), kept as attributes.
    """

    def __init__(self, message: str, **context: Any) -> None:
        super().__init__(message)
        self.context = dict(context)
        for key, value in context.items():
            setattr(self, key, value)


class KbpConnectionError(KbpError):
    """A Kafka cluster or a Prometheus server could not be reached."""


class KbpInputError(KbpError):
    """Input that cannot be parsed or does not match the expected schema."""


class KbpDataError(KbpError):
    """The data is too thin or inconsistent for the requested analysis."""
