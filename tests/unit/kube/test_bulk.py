"""Runs of whole list items found without parsing them one by one (kube.bulk)."""

from __future__ import annotations

import json
import re

import pytest

from yurthub.kube import bulk
from yurthub.kube.bulk import (
    Bulk,
    Finder,
    Interest,
    Keyed,
    Literal,
    find_run,
    hides,
    separator_of,
)
from yurthub.kube.framing import HAVE_MSGSPEC, Item, ListParser

EXACT = [False, True] if HAVE_MSGSPEC else [False]


@pytest.mark.parametrize("text, hidden", [
    ('"a\\u0026b"', False), ('"\\u003cx\\u003e"', False), ('"caf\\u00e9"', False),
    ('"\\u4e2d"', False), ('"KUBERNETES\\u005fSERVICE"', True), ('"kubernet\\u0065s"', True),
    ('"\\u0022quoted"', True), ('"x\\u002dy"', True), ('"\\u0041"', True), ('"plain"', False),
])
def test_hides_only_escapes_of_what_a_pattern_may_hold(text, hidden):
    assert hides(text) is hidden and hides(text.encode()) is hidden


HIDING = re.compile(rb"\\(?:/|u00(?:2[2dDeEfF]|3[0-9aA]|[4-7][0-9a-fA-F]))")


@pytest.mark.parametrize("seed", range(30))
def test_an_escape_that_may_hide_is_found_where_the_regex_finds_it(seed):
    """Backslashes sparse and dense (past DENSE, the regex's own scan takes over), clusters
    of harmless escapes, \\\\ before / and u, escapes cut by ``end``: in bytes and str,
    always the regex's first match."""
    import random
    rng = random.Random(seed)
    pieces = ['\\"', "\\\\", "\\/", "\\u0041", "\\u0026", "\\u00e9", "\\u004", "\\n",
              "\\u", "u0041", "x" * rng.choice([1, 40, 200, 3000]), "/", "\\"]
    weights = [30, 2, 1, 1, 3, 2, 1, 3, 1, 2, 40, 2, 1]
    if rng.random() < 0.5:
        weights[2] = weights[3] = 0  # nothing hides: the whole region is read
    for _ in range(20):
        text = "".join(rng.choices(pieces, weights, k=rng.choice([0, 3, 50, 400])))
        start = rng.randrange(len(text) + 1)
        end = rng.randrange(start, len(text) + 1)
        for buf in (text, text.encode()):
            m = HIDING.search(text.encode(), start, end)
            assert bulk.find_hiding(buf, start, end) == (m.start() if m else -1), \
                (text[start:end][:200], start, end)
        assert hides(text[start:end]) is (HIDING.search(text[start:end].encode()) is not None)


def test_a_pod_list_is_searched_for_escapes_at_memchr_speed(monkeypatch):
    """managedFields' keys put a backslash every few hundred bytes into a pod list; the
    regex engine, which looks for one a byte at a time, is not run over the list: each
    cluster of \\" is passed in one match."""
    searched = []

    class Spy:
        def __init__(self, rx):
            self.rx = rx

        def search(self, buf, start, end):
            searched.append(end - start)
            return self.rx.search(buf, start, end)

        def match(self, buf, start, end):
            return self.rx.match(buf, start, end)

    monkeypatch.setattr(bulk, "_HIDING_RE", tuple(Spy(r) for r in bulk._HIDING_RE))
    pod = {"metadata": {"name": "web-1", "managedFields": [{"fieldsV1": {
        "f:metadata": {"f:ownerReferences": {'k:{"uid":"19a59bf5-00c3-5a75"}': {}}},
        "f:spec": {"f:containers": {'k:{"name":"app"}': {"f:env": {
            'k:{"name":"A"}': {".": {}, "f:name": {}, "f:value": {}},
            'k:{"name":"B"}': {".": {}, "f:name": {}, "f:value": {}}}}}},
        "f:status": {"f:conditions": {'k:{"type":"Ready"}': {".": {}, "f:status": {}},
                                      'k:{"type":"PodScheduled"}': {".": {}}}}}}]},
        "spec": {"containers": [{"name": "app", "image": "nginx:1.27" + "x" * 2000}]}}
    body = b",".join([json.dumps(pod, separators=(",", ":")).encode()] * 500)
    assert body.count(b"\\") >= 500 * 20
    assert bulk.find_hiding(body, 0, len(body)) == -1
    assert Interest(["KUBERNETES_SERVICE_"]).find(body) == -1
    assert sum(searched) < len(body) // 100
    hidden = body + b',{"env":[{"name":"KUBERNETES\\u005fSERVICE_HOST"}]}'
    assert bulk.find_hiding(hidden, 0, len(hidden)) == hidden.index(b"\\u005f")


def test_interest_finds_the_first_hit():
    i = Interest(['"kubernetes"', "KUBERNETES_SERVICE_"])
    body = b'{"a":"x"},{"b":"KUBERNETES_SERVICE_HOST"},{"name":"kubernetes"}'
    assert i.find(body) == body.index(b"KUBERNETES")
    assert i.find(body.decode(), 20) == body.index(b'"kubernetes"')
    assert i.find(body, 0, 20) == -1
    assert i.find(b'{"k":"kubern\\u0065tes"}') == 12
    assert Interest(None).find(b"anything", 3) == 3 and Interest(None).everything
    assert Interest([]).nothing and Interest([]).find(b'"\\u0041"') == -1


@pytest.mark.parametrize("seed", range(40))
@pytest.mark.parametrize("rare_min", [0, 1 << 16])
def test_a_literal_is_found_where_find_finds_it(seed, rare_min, monkeypatch):
    """Through its rarest character or not, with that character frequent or absent, in
    bytes and str, bounded: always the first occurrence ``find`` gives."""
    import random
    monkeypatch.setattr(bulk, "RARE_MIN", rare_min)
    rng = random.Random(seed)
    alphabet = rng.choice(["KU_", "KUBERNETES_SERVICE_", 'ab"k', "xyz"])
    needle = rng.choice(["KUBERNETES_SERVICE_", "K", "UK", '"kub', "KUK_", "zz"])
    lit = Literal(needle)
    for _ in range(50):
        if rng.random() < 0.3:
            lit = Literal(needle)  # a fresh one now and then; mostly one used before
        n = rng.choice([0, 5, 100, 70_000])
        text = "".join(rng.choices(alphabet, k=n))
        if rng.random() < 0.5 and n:
            at = rng.randrange(n)
            text = text[:at] + needle + text[at:]
        start = rng.randrange(len(text) + 1)
        end = rng.randrange(start, len(text) + 1)
        for buf in (text, text.encode()):
            want = buf.find(needle if isinstance(buf, str) else needle.encode(), start, end)
            assert lit.find(buf, start, end) == want, (needle, start, end)


def test_a_literal_is_looked_for_through_its_rarest_character():
    assert Literal("KUBERNETES_SERVICE_").ch == ("K", b"K")
    assert Literal('"LoadBalancer"').ch == ("B", b"B")
    assert Literal('"e"').ch == ("e", b"e")


def items(n: int, extra: dict | None = None, odd: str = "{[]}") -> list[bytes]:
    """Pod-like items; ``odd`` is a string value with brackets in it."""
    out = []
    for i in range(n):
        o = {"metadata": {"name": f"p{i}", "labels": {"a": odd}},
             "spec": {"containers": [{"name": "c", "env": [{"name": "X", "value": "v"}]}]}}
        if extra and i in extra:
            o["spec"]["containers"][0]["env"].append(extra[i])
        out.append(json.dumps(o, separators=(",", ":")).encode())
    return out


@pytest.mark.parametrize("exact", EXACT)
def test_a_run_ends_before_the_first_item_of_interest(exact):
    raws = items(6, {4: {"name": "KUBERNETES_SERVICE_HOST", "value": "1"}})
    buf = b",".join(raws) + b",{"
    sep = separator_of(raws[0])
    assert sep == b'},{"metadata":'
    got = find_run(buf, 0, sep, Finder(Interest(["KUBERNETES_SERVICE_"])), exact=exact)
    assert got == (len(b",".join(raws[:4])), 4)
    # Without interest: up to the last separator (the last item may not be whole yet).
    assert find_run(buf, 0, sep, Finder(Interest([])), exact=exact) == (
        len(b",".join(raws[:5])), 5)


@pytest.mark.parametrize("exact", EXACT)
def test_brackets_in_strings_that_do_not_balance_mean_item_by_item_without_msgspec(exact):
    raws = items(4, odd="{[")
    buf = b",".join(raws) + b",{"
    got = find_run(buf, 0, separator_of(raws[0]), Finder(Interest([])), exact=exact)
    if exact:
        assert got == (len(b",".join(raws[:3])), 3)
    else:
        assert got == len(b",".join(raws[:3]))  # not a run: go item by item up to there


@pytest.mark.parametrize("exact", EXACT)
def test_a_separator_inside_an_item_is_not_a_run(exact):
    nested = json.dumps({"metadata": {"name": "x"}, "spec": {"list": [
        {"metadata": {"a": 1}}, {"metadata": {"b": 2}}]}}, separators=(",", ":")).encode()
    buf = nested + b',{"metadata":'
    sep = b'},{"metadata":'
    # The last separator is the real one: one whole item.
    end, count = find_run(buf, 0, sep, Finder(Interest([])), exact=exact)
    assert end == len(nested)
    assert count == 1 or not exact  # without msgspec the count is of separators
    # Cut inside the item (the next item not there yet): never handed out as a run.
    cut = nested[: nested.index(b'},{"metadata":{"b"') + 14]
    assert not isinstance(find_run(cut, 0, sep, Finder(Interest([])), exact=exact), tuple)


@pytest.mark.parametrize("exact", EXACT)
@pytest.mark.parametrize("size", [1, 100, 4096, 1 << 20])
def test_list_parser_hands_out_runs_and_items_of_interest(exact, size):
    env = {"name": "KUBERNETES_SERVICE_HOST", "value": "10.96.0.1"}
    raws = items(300, {7: env, 150: env, 299: env})
    body = (b'{"kind":"PodList","apiVersion":"v1","metadata":{"resourceVersion":"5"},'
            b'"items":[' + b",".join(raws) + b"]}\n")
    p = ListParser(accelerate=exact, bulk=Interest(["KUBERNETES_SERVICE_"]))
    pieces: list = []
    for i in range(0, len(body), size):
        pieces += p.feed_pieces(body[i:i + size])
    last, info = p.close_pieces()
    pieces += last
    assert b"".join(x if isinstance(x, bytes) else x.raw for x in pieces) == body
    assert info.item_count == 300
    singles = [json.loads(x.raw)["metadata"]["name"] for x in pieces if isinstance(x, Item)]
    assert {"p7", "p150", "p299"} <= set(singles)
    if size >= 4096:
        assert len(singles) < 30  # the rest came in runs
        assert sum(x.count for x in pieces if isinstance(x, Bulk)) == 300 - len(singles)


def test_keyed_patterns_count_only_listed_values():
    label = '"kubernetes.io/service-name"'
    i = Interest([Keyed(label, {"web", "db"})])
    body = (b'{"metadata":{"labels":{"kubernetes.io/service-name":"other"}}},'
            b'{"metadata":{"labels":{"kubernetes.io/service-name":"db"}}}')
    assert i.find(body) == body.index(b'"kubernetes.io/service-name":"db"')
    assert i.find(body.decode(), 0, 60) == -1
    assert Interest([Keyed(label, {"nope"})]).find(body) == -1
    assert i.longest >= 256  # a key and its value may run across two chunks


@pytest.mark.parametrize("seed", range(5))
def test_patterns_sharing_a_prefix_are_found_as_if_each_were_looked_for_alone(seed):
    # "kubernetes" and the Keyed "kubernetes.io/service-name" are looked for in one pass
    # (their common prefix); the first hit must be the earliest of the patterns' own.
    import random
    rnd = random.Random(seed)
    words = [b"x" * 30, b'"kubernetes"', b'"kubernetes', b'"kubernetes.io/', b'"kube',
             b'"kubernetes.io/service-name":"web"', b'"kubernetes.io/service-name":"no"',
             b'"kubernetes.io/service-name" : "db"', b'"kubernetes.io/service-name":',
             b'"kubernetes.io/hostname":"web"', b"KUBERNETES_SERVICE_"]
    stream = b"".join(rnd.choice(words) for _ in range(2000))
    patterns = ['"kubernetes"', "KUBERNETES_SERVICE_",
                Keyed('"kubernetes.io/service-name"', {"web", "db"}),
                Keyed('"kubernetes.io/hostname"', {"web"})]
    together = Interest(patterns)
    alone = [Interest([p]) for p in patterns]
    for _ in range(300):
        start = rnd.randint(0, len(stream))
        end = rnd.randint(start, len(stream))
        hits = [i.find(stream, start, end) for i in alone]
        want = min([h for h in hits if h >= 0], default=-1)
        assert together.find(stream, start, end) == want
        assert together.find(stream.decode(), start, end) == want
        assert together.in_item(stream, start, end) == (want >= 0)


@pytest.mark.parametrize("seed", range(5))
def test_the_finder_agrees_with_a_fresh_search_as_the_buffer_moves(seed):
    import random
    rnd = random.Random(seed)
    words = [b"x" * 50, b'"kubernetes"', b"KUBERNETES_SERVICE_HOST", b"\\u0041",
             b'"kubernetes.io/service-name":"web"', b'"kubernetes.io/service-name":"no"']
    stream = b"".join(rnd.choice(words) for _ in range(3000))
    interest = Interest(['"kubernetes"', "KUBERNETES_SERVICE_",
                         Keyed('"kubernetes.io/service-name"', {"web"})])
    finder = Finder(interest)
    buf, fed, start = b"", 0, 0  # start only moves forward, as a parser's position does
    while fed < len(stream) or buf:
        n = rnd.randint(1, 400)
        buf += stream[fed:fed + n]
        fed += n
        for _ in range(3):
            start = rnd.randint(start, len(buf))
            end = rnd.randint(start, len(buf))
            # a hit counts when it starts before ``end`` (the item it is in is of interest)
            first = interest.find(buf, start, len(buf))
            assert finder.find(buf, start, end) == (first if first < end else -1)
        drop = rnd.randint(0, start) if fed < len(stream) else len(buf)
        buf = buf[drop:]
        start = max(0, start - drop)
        finder.consumed(drop)
