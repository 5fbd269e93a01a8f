"""The adapter bookkeeping both engines share, by hand."""

from __future__ import annotations

import pytest

from service.errors import AdapterError
from service.serving.engines.base import AdapterInfo
from service.serving.engines.registry import AdapterRegistry


def test_a_namespace_is_served_only_by_a_loaded_adapter():
    registry = AdapterRegistry()
    with pytest.raises(AdapterError, match="not loaded"):
        registry.activate("a", "v1")
    registry.add("v1", "/adapters/v1")
    registry.activate("a", "v1")
    assert registry.serving("a") == "v1" and registry.serving("b") is None
    assert registry.infos() == [AdapterInfo("v1", "/adapters/v1", ["a"])]
    with pytest.raises(AdapterError, match="already loaded"):
        registry.require_new("v1")
    registry.activate("a", None)
    assert registry.serving("a") is None


def test_an_adapter_serving_a_namespace_cannot_be_unloaded():
    registry = AdapterRegistry()
    registry.add("v1", "/adapters/v1")
    registry.activate("b", "v1")
    registry.activate("a", "v1")
    with pytest.raises(AdapterError, match="still serves namespace\\(s\\) a, b"):
        registry.require_unused("v1")
    registry.activate("a", None)
    registry.activate("b", None)
    registry.require_unused("v1")
    assert registry.remove("v1") == "/adapters/v1"
    with pytest.raises(AdapterError, match="not loaded"):
        registry.require_unused("v1")


def test_requests_are_pinned_to_the_adapter_they_were_admitted_on():
    registry = AdapterRegistry()
    registry.add("v1", "/adapters/v1")
    registry.activate("a", "v1")
    pinned = registry.pin("a")
    base = registry.pin("b")
    registry.activate("a", None)  # a swap does not change a request already admitted
    assert (pinned, base) == ("v1", None)
    assert (registry.requests_on("v1"), registry.requests_on(None), registry.requests()) == (1, 1, 2)
    registry.unpin(pinned)
    registry.unpin(base)
    assert (registry.requests_on("v1"), registry.requests()) == (0, 0)
