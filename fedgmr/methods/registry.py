"""Methods by name. A method module registers its objects here at import time."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fedgmr.methods.base import Method

METHODS: dict[str, "Method"] = {}


def register(method: "Method") -> "Method":
    if method.name in METHODS:
        raise ValueError(f"method {method.name!r} registered twice")
    METHODS[method.name] = method
    return method


def get(name: str) -> "Method":
    return METHODS[name]


# Importing the method modules fills the registry (one file per method family).
from fedgmr.methods import aggregation_ablation as _agg  # noqa: E402,F401
from fedgmr.methods import fedasync as _fedasync  # noqa: E402,F401
from fedgmr.methods import fedavg as _fedavg  # noqa: E402,F401
from fedgmr.methods import fedgmr as _fedgmr  # noqa: E402,F401
from fedgmr.methods import fedrolex as _fedrolex  # noqa: E402,F401
from fedgmr.methods import fiarse as _fiarse  # noqa: E402,F401
from fedgmr.methods import fixed_density as _fixed  # noqa: E402,F401
from fedgmr.methods import fjord as _fjord  # noqa: E402,F401
from fedgmr.methods import heterofl as _heterofl  # noqa: E402,F401
