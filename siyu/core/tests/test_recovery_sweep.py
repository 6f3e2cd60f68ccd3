"""The worker's recovery sweep runs every context's step even when one of them fails."""

from __future__ import annotations

import datetime as dt

import pytest

from siyu.core.management.commands.worker import recovery_sweep


@pytest.mark.django_db
def test_a_failing_step_is_logged_and_the_later_steps_still_run(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    ran: list[str] = []

    def broken() -> None:
        raise RuntimeError("fission table briefly away")

    monkeypatch.setattr("siyu.campaigns.services.fission_settle_due", broken)
    monkeypatch.setattr("siyu.leads.services.leads_due", lambda: ran.append("leads"))
    with caplog.at_level("ERROR", logger="siyu.worker"):
        recovery_sweep(kind="db", older_than=dt.timedelta(minutes=5))
    assert ran == ["leads"]
    assert [r.getMessage() for r in caplog.records] == ["recovery sweep step fission failed"]
