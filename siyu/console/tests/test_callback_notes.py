"""The callback log shows what processing noted in the reader's language; errors stay as they were raised."""

from __future__ import annotations

import pytest
from django.utils import translation

from siyu.console.templatetags.console import callback_note


@pytest.mark.parametrize(
    ("note", "zh", "en"),
    [
        ("new customer", "新客户", "new customer"),
        (
            "new customer; details to be read later (errcode 45009)",
            "新客户；详情稍后读取（errcode 45009）",
            "new customer; details to be read later (errcode 45009)",
        ),
        ("3 joined, 1 left", "3 人入群，1 人退群", "3 joined, 1 left"),
        ("unknown member s001-02", "未知成员 s001-02", "unknown member s001-02"),
        ("WeComAPIError: errcode 40001", "WeComAPIError: errcode 40001", "WeComAPIError: errcode 40001"),
        ("", "", ""),
    ],
)
def test_notes_are_translated_part_by_part(note: str, zh: str, en: str) -> None:
    with translation.override("zh-hans"):
        assert callback_note(note) == zh
    with translation.override("en"):
        assert callback_note(note) == en
