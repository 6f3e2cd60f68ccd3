"""`reraise_refusal`: which service errors a console view shows, and which it leaves to `console_view`'s 403/404."""

from __future__ import annotations

import pytest

from siyu.console.decorators import reraise_refusal
from siyu.core.errors import Conflict, NotFound, PermissionDenied, SiyuError, ValidationFailed


class _Refused(SiyuError):
    """An app's own error that answers 403 without subclassing PermissionDenied."""

    status_code = 403


@pytest.mark.parametrize("error", [SiyuError, ValidationFailed, Conflict])
@pytest.mark.parametrize("include_not_found", [False, True])
def test_an_error_the_user_can_fix_is_left_to_the_view(error: type[SiyuError], include_not_found: bool) -> None:
    # Returning (not raising) is what lets the view go on to show exc.message next to the field.
    assert reraise_refusal(error("Enter a name.", field="name"), include_not_found=include_not_found) is None


@pytest.mark.parametrize("error", [PermissionDenied, _Refused])
@pytest.mark.parametrize("include_not_found", [False, True])
def test_a_refusal_is_raised_again_unchanged(error: type[SiyuError], include_not_found: bool) -> None:
    exc = error("Only HQ can do this.")
    with pytest.raises(error) as raised:
        reraise_refusal(exc, include_not_found=include_not_found)
    assert raised.value is exc


def test_not_found_is_the_form_s_error_unless_the_view_asks_for_the_404() -> None:
    exc = NotFound("tag not found", field="tag_ids")
    reraise_refusal(exc)  # an id picked in a form: shown in the form, which keeps what was typed
    with pytest.raises(NotFound) as raised:
        reraise_refusal(exc, include_not_found=True)
    assert raised.value is exc
