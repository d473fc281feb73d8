"""Domain errors: what services raise when a person asked for something that cannot be done.

Each carries an English message id (translated when shown), an HTTP status, and for bad
input the fields at fault.  ``marketplace.app`` turns them into a JSON problem on the API and
a page in the browser.
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field as dataclass_field
from typing import Any, ClassVar

from marketplace.i18n import N_, gettext


@dataclass
class FieldError:
    """One bad field: its name (as in the form or JSON body) and what to fix."""

    field: str
    message: str
    params: dict[str, Any] = dataclass_field(default_factory=dict)

    def text(self) -> str:
        return gettext(self.message, **self.params)


class DomainError(Exception):
    """Something a person asked for cannot be done; the message says why and what to do."""

    status: ClassVar[int] = 400
    code: ClassVar[str] = "bad_request"
    default_message: ClassVar[str] = N_("The request cannot be carried out.")

    def __init__(
        self,
        message: str | None = None,
        *,
        errors: list[FieldError] | None = None,
        **params: Any,
    ) -> None:
        self.message = message or self.default_message
        self.params = params
        self.errors = errors or []
        super().__init__(self.message % params if params else self.message)

    def text(self) -> str:
        """The message in the current locale."""
        return gettext(self.message, **self.params)


class ValidationFailed(DomainError):
    status = 422
    code = "validation_failed"
    default_message = N_("Some fields need correcting.")

    @classmethod
    def field(cls, name: str, message: str, **params: Any) -> ValidationFailed:
        """One bad field."""
        return cls(errors=[FieldError(name, message, params)])


class NotAuthenticated(DomainError):
    status = 401
    code = "not_authenticated"
    default_message = N_("Please log in first.")


class PermissionDenied(DomainError):
    status = 403
    code = "permission_denied"
    default_message = N_("Your account is not allowed to do this.")


class NotFound(DomainError):
    """Also raised when a record exists but is not the caller's to see: no hint either way."""

    status = 404
    code = "not_found"
    default_message = N_(
        "Nothing was found at this address. It may have been removed, or it is not yours to see."
    )


class Conflict(DomainError):
    status = 409
    code = "conflict"
    default_message = N_("This changed in the meantime; reload the page and try again.")


class RateLimited(DomainError):
    status = 429
    code = "rate_limited"
    default_message = N_("Too many attempts. Please wait %(seconds)s seconds and try again.")

    def __init__(self, retry_after: int, message: str | None = None) -> None:
        self.retry_after = retry_after
        super().__init__(message, seconds=retry_after)


class Unavailable(DomainError):
    status = 503
    code = "unavailable"
    default_message = N_("The service is briefly unavailable. Please try again in a minute.")
