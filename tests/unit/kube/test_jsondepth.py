"""How deep a JSON text nests, measured without decoding it, and the 400 that bodies nested
deeper than the hub decodes get (a RecursionError reached clients as a 500)."""

from __future__ import annotations

import json

import pytest

from yurthub.errors import BadRequest, NestingTooDeep
from yurthub.kube import patch as kpatch
from yurthub.kube.jsondepth import MAX_DEPTH, check_depth, too_deep
from yurthub.kube.patchlimits import decode_patch


def nested(depth: int, leaf: str = "1") -> str:
    return '{"a":' * depth + leaf + "}" * depth


@pytest.mark.parametrize("text, deep", [
    (nested(MAX_DEPTH), False),
    (nested(MAX_DEPTH + 1), True),
    ("[" * 300 + "]" * 300, True),
    ("[" + "[]," * 5000 + "[]]", False),                  # many brackets, two levels
    ('{"a":"' + "[" * 5000 + '"}', False),                # brackets inside a string
    ('{"a":"\\"' + "[" * 5000 + '"}', False),             # ... after an escaped quote
    ('["\\\\",' + "[" * 300 + "]" * 300 + "]", True),     # an escaped backslash ends nothing
    ("[" * 150 + '"' + '\\"[' * 100000, False),         # unterminated string: scanned once
])
def test_depth_is_measured_on_the_text(text, deep):
    assert too_deep(text) is deep
    assert too_deep(text.encode()) is deep


def test_a_text_too_deep_is_a_value_error_naming_the_limit():
    with pytest.raises(NestingTooDeep, match=f"more than {MAX_DEPTH} levels") as e:
        check_depth(nested(5000))
    assert isinstance(e.value, ValueError)


POD = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "d"},
       "spec": {"containers": []}, "status": {}}


@pytest.mark.parametrize("media, body", [
    (kpatch.MERGE_PATCH, '{"status":' + nested(5000) + "}"),
    (kpatch.STRATEGIC_MERGE_PATCH, '{"status":' + nested(5000) + "}"),
    (kpatch.JSON_PATCH, '[{"op":"add","path":"/status/a","value":' + nested(5000) + "}]"),
])
def test_a_deeply_nested_patch_is_400_not_a_recursion_error(media, body):
    for call in (lambda: decode_patch(body.encode(), media),
                 lambda: kpatch.apply_patch(POD, body.encode(), media, "Pod")):
        with pytest.raises(BadRequest, match="exceeded max depth") as e:
            call()
        assert e.value.code == 400


def test_patches_as_deep_as_the_limit_apply():
    body = '{"status":' + nested(MAX_DEPTH - 2) + "}"
    for media in (kpatch.MERGE_PATCH, kpatch.STRATEGIC_MERGE_PATCH):
        out = kpatch.apply_patch(POD, body.encode(), media, "Pod")
        assert json.dumps(out).count("{") == MAX_DEPTH + 1
