"""Errors of the LLM layer, one class per thing a user can fix.

Every message names the backend and model involved and says what to do next; none carries an API key.
"""

from __future__ import annotations


class LLMError(RuntimeError):
    """Base class: anything that stopped a plan from being made."""


class LLMConfigError(LLMError):
    """The settings cannot work: unknown backend, missing key variable, missing model file or dependency."""


class AdapterMissingError(LLMConfigError):
    """The pack's tuned adapter was asked for but is not there: the planner falls back to the rules."""


class LLMUnreachableError(LLMError):
    """Nothing answered at the backend's address."""


class LLMTimeoutError(LLMError):
    """The backend accepted the request but did not answer in time."""


class LLMHTTPError(LLMError):
    """The backend answered with an HTTP error status."""


class LLMReplyError(LLMError):
    """The model's replies did not fit the plan's schema, even after repair and retries."""
