"""Kubernetes' name rules, declared once in kube/validation.py, against apimachinery's own tables
(tests/golden/names.json), and through every place that uses them: the cache keys, the
settings and the label selectors must accept and refuse exactly what the rule does."""

from __future__ import annotations

from typing import Any

import pytest

from tests.golden import load
from yurthub import config
from yurthub.errors import ApiError, ConfigError, InvalidKeyError
from yurthub.kube import labels, validation
from yurthub.storage.keys import CollectionKey, check_component, check_name, check_namespace

NAMES = load("names")

RULES = {
    "dns1123_label": (validation.is_dns1123_label, validation.dns1123_label_errors),
    "dns1123_subdomain": (validation.is_dns1123_subdomain, validation.dns1123_subdomain_errors),
    "dns1035_label": (validation.is_dns1035_label, validation.dns1035_label_errors),
    "qualified_name": (None, validation.qualified_name_errors),
    "label_value": (None, validation.label_value_errors),
}


def cases(*rules: str) -> list[Any]:
    out = []
    for rule in rules:
        for valid in (True, False):
            for value in NAMES[rule]["valid" if valid else "invalid"]:
                shown = value if len(value) < 40 else f"{value[:3]}...x{len(value)}"
                out.append(pytest.param(rule, value, valid, id=f"{rule}-{shown!r}"))
    return out


def test_the_table_is_apimachinerys():
    assert NAMES["origin"]["repository"] == "kubernetes/apimachinery"
    assert sum(len(NAMES[r]["valid"]) + len(NAMES[r]["invalid"]) for r in RULES) == 237


@pytest.mark.parametrize(("rule", "value", "valid"), cases(*RULES))
def test_rule_agrees_with_apimachinery(rule: str, value: str, valid: bool):
    is_valid, errors = RULES[rule]
    if is_valid is not None:
        assert is_valid(value) is valid
    assert (errors(value) == []) is valid


@pytest.mark.parametrize("rule", list(RULES))
def test_a_trailing_newline_is_never_part_of_a_valid_name(rule: str):
    """Python's ``$`` matches before a final newline; Go's regexp (and a file name) do not."""
    is_valid, errors = RULES[rule]
    for value in NAMES[rule]["valid"]:
        if value:
            assert errors(value + "\n"), value
            if is_valid is not None:
                assert not is_valid(value + "\n")


@pytest.mark.parametrize(("rule", "value", "valid"),
                         cases("dns1123_label", "dns1123_subdomain", "dns1035_label"))
def test_cache_keys_follow_the_rules(rule: str, value: str, valid: bool):
    """A namespace is a DNS-1123 label, an object name and an API group DNS-1123 subdomains, an
    API version a DNS-1035 label, a resource a DNS-1123 label: nothing else becomes a path."""

    def build() -> CollectionKey | None:
        if rule == "dns1123_label":
            check_namespace(value)
            return CollectionKey("kubelet", "", "v1", value, True)
        if rule == "dns1123_subdomain":
            check_name(value)
            if len(value) > 200:  # the directory name <resource>.<version>.<group> is too long
                return None
            return CollectionKey("kubelet", value, "v1", "widgets", True)
        return CollectionKey("kubelet", "apps", value, "deployments", True)

    if valid:
        build()
    else:
        with pytest.raises(InvalidKeyError):
            build()


@pytest.mark.parametrize(("rule", "value", "valid"), cases("dns1123_subdomain"))
def test_the_node_name_setting_follows_the_rule(rule: str, value: str, valid: bool):
    if value.strip() != value or value == "":
        return  # settings are read stripped; empty means "the host name", by design
    if valid:
        assert config.load(None, {"node_name": value}).node_name == value
    else:
        with pytest.raises(ConfigError):
            config.load(None, {"node_name": value})


@pytest.mark.parametrize(("rule", "value", "valid"), cases("qualified_name", "label_value"))
def test_label_selectors_follow_the_rules(rule: str, value: str, valid: bool):
    """A label key must be a qualified name and a value a label value, or the selector is a
    400, as kube-apiserver answers it."""
    text = f"{value}=x" if rule == "qualified_name" else f"app={value}"
    if valid:
        labels.parse(text)
    else:
        with pytest.raises(ApiError) as e:
            labels.parse(text)
        assert e.value.code == 400


@pytest.mark.parametrize(("value", "valid"), [
    ("kubelet", True), ("kube-proxy", True), ("coredns", True), ("flanneld", True),
    ("calico-node", True), ("node.exporter_2", True), ("0agent", True),
    ("", False), ("Kubelet", False), ("-kubelet", False), (".kubelet", False),
    ("_kubelet", False), ("kube proxy", False), ("kube/proxy", False), ("..", False),
    ("kubelet\n", False),
])
def test_one_component_rule_for_the_cache_tree_and_the_cache_agents_setting(value: str,
                                                                             valid: bool):
    """The cache tree's first segment and ``--cache-agents`` name components by one rule:
    an agent that could never be a cache directory is refused where it is configured."""
    assert validation.is_component(value) is valid
    if valid:
        assert check_component(value) == value
        assert value in config.load(None, {"node_name": "n", "cache_agents": value}).cache_agents
    else:
        with pytest.raises(InvalidKeyError):
            check_component(value)
        if value and value.strip() == value and value.lower() == value:
            with pytest.raises(ConfigError):
                config.load(None, {"node_name": "n", "cache_agents": value})
