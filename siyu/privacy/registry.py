"""The contexts that hold data about a customer, each with a `privacy` module (export_customer, erase_customer).

Order matters for erasure: contexts that find the customer's rows through their identities (wecom and groups by
WeCom id, leads by phone and unionid) run before the customers context, which deletes them; customers runs last.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

CONTEXTS: tuple[str, ...] = (
    "wecom",
    "analytics",
    "tags",
    "commerce",
    "channels",
    "campaigns",
    "groups",
    "inheritance",
    "leads",
    "customers",
)


@dataclass(frozen=True)
class PrivacyContext:
    name: str
    module: ModuleType

    @property
    def export_customer(self) -> Callable[..., dict[str, Any]]:
        return self.module.export_customer  # type: ignore[no-any-return]

    @property
    def erase_customer(self) -> Callable[..., dict[str, int]]:
        return self.module.erase_customer  # type: ignore[no-any-return]


def privacy_contexts() -> list[PrivacyContext]:
    return [PrivacyContext(name, importlib.import_module(f"siyu.{name}.privacy")) for name in CONTEXTS]
