"""The scopes of custom resources learned from the cloud's discovery, asked by the hub."""

from __future__ import annotations

import json

import pytest

from yurthub.cache import scopes
from yurthub.cache.scopes import Scopes
from yurthub.metrics import Metrics

DOC = {"kind": "APIResourceList", "groupVersion": "apps.example.com/v1", "resources": [
    {"name": "widgets", "namespaced": True, "kind": "Widget", "verbs": ["list"]},
    {"name": "widgets/status", "namespaced": True, "kind": "Widget"},
    {"name": "pools", "namespaced": False, "kind": "Pool"},
    {"name": "odd", "namespaced": "yes", "kind": "Odd"},
    "not-an-object",
]}


def asking(answers: list[bytes | None]) -> tuple[Scopes, list[tuple[str, str]]]:
    s = Scopes(Metrics())
    asked: list[tuple[str, str]] = []

    def ask(group: str, version: str) -> bytes | None:
        asked.append((group, version))
        return answers.pop(0) if answers else None
    s.ask = ask
    return s, asked


def test_discovery_teaches_every_resource_of_the_group_version():
    s, asked = asking([json.dumps(DOC).encode()])
    assert s.discover("apps.example.com", "v1")
    assert asked == [("apps.example.com", "v1")]
    assert s.get("apps.example.com", "widgets") == (True, "Widget")
    assert s.get("apps.example.com", "pools") == (False, "Pool")
    assert s.get("apps.example.com", "widgets/status") is None   # a subresource
    assert s.get("apps.example.com", "odd") is None              # no boolean scope


@pytest.mark.parametrize("body", [None, b"", b"not json", b"[]", b'{"resources": 7}'])
def test_an_answer_that_says_nothing_is_asked_again_only_after_a_while(body, monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(scopes.time, "monotonic", lambda: now[0])
    s, asked = asking([body, json.dumps(DOC).encode()])
    assert not s.discover("apps.example.com", "v1")
    assert not s.discover("apps.example.com", "v1")   # not asked again at once
    assert len(asked) == 1
    now[0] += scopes.DISCOVERY_RETRY
    assert s.discover("apps.example.com", "v1")
    assert len(asked) == 2 and s.get("apps.example.com", "pools") == (False, "Pool")


def test_nothing_is_asked_without_a_cloud_or_for_the_core_group():
    s = Scopes(Metrics())
    assert not s.discover("apps.example.com", "v1")   # no ask set (tests, the CLI)
    s, asked = asking([json.dumps(DOC).encode()])
    assert not s.discover("", "v1")
    assert asked == []
