"""The token memory: what the cloud allowed whom, bounded in age and count, never the token."""

from __future__ import annotations

import base64
import json

import pytest

from yurthub.access.keys import AccessKey
from yurthub.access.memory import TokenMemory

SECRET = AccessKey("get", "", "secrets", "", "ns", "s1")
OTHER = AccessKey("get", "", "secrets", "", "ns", "s2")
PODS = AccessKey("list", "", "pods", "", "", "")
TOKEN = "Bearer 0123456789abcdef0123456789abcdef"


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def jwt(exp: float) -> str:
    claims = base64.urlsafe_b64encode(json.dumps({"exp": exp}).encode()).decode().rstrip("=")
    return f"Bearer eyJhbGciOiJSUzI1NiJ9.{claims}.c2ln"


@pytest.fixture
def clock() -> Clock:
    return Clock()


def memory(clock: Clock, **kw) -> TokenMemory:
    return TokenMemory(kw.pop("ttl", 3600), kw.pop("max_tokens", 8), clock=clock, **kw)


def test_a_token_is_honoured_for_what_it_was_seen_allowed_only(clock):
    m = memory(clock)
    assert not m.knows(TOKEN)
    m.remember(TOKEN, "calico-node", SECRET)
    assert m.knows(TOKEN)
    assert m.allows(TOKEN, "calico-node", SECRET)
    assert not m.allows(TOKEN, "calico-node", OTHER)
    assert not m.allows(TOKEN, "flanneld", SECRET)          # another component's cache
    assert not m.allows("Bearer other", "calico-node", SECRET)


def test_a_list_allows_the_objects_it_listed(clock):
    m = memory(clock)
    m.remember(TOKEN, "kube-proxy", PODS)
    assert m.allows(TOKEN, "kube-proxy", AccessKey("get", "", "pods", "", "default", "p"))
    assert m.allows(TOKEN, "kube-proxy", AccessKey("list", "", "pods", "", "default", ""))
    assert not m.allows(TOKEN, "kube-proxy", AccessKey("patch", "", "pods", "", "default", "p"))


def test_an_opaque_token_is_honoured_ttl_after_it_was_last_accepted(clock):
    m = memory(clock, ttl=100)
    m.remember(TOKEN, "c", SECRET)
    clock.now += 90
    m.remember(TOKEN, "c", SECRET)        # accepted again: honoured for another ttl
    clock.now += 90
    assert m.allows(TOKEN, "c", SECRET)
    clock.now += 11
    assert not m.knows(TOKEN) and not m.allows(TOKEN, "c", SECRET)


def test_a_jwt_is_honoured_until_its_expiry(clock):
    m = memory(clock, ttl=100)
    token = jwt(clock.now + 1000)
    m.remember(token, "c", SECRET)
    clock.now += 999
    assert m.allows(token, "c", SECRET)
    clock.now += 1
    assert not m.knows(token)
    m.remember(jwt(clock.now - 1), "c", SECRET)      # already expired: not remembered
    assert not m.knows(jwt(clock.now - 1))


def test_the_least_recently_accepted_tokens_are_forgotten_first(clock):
    m = memory(clock, max_tokens=2)
    for t in ("Bearer a", "Bearer b", "Bearer c"):
        m.remember(t, "c", SECRET)
    assert not m.knows("Bearer a") and m.knows("Bearer b") and m.knows("Bearer c")


def test_each_token_keeps_a_bounded_number_of_keys(clock):
    m = memory(clock, max_keys=2)
    for name in ("s1", "s2", "s3"):
        m.remember(TOKEN, "c", SECRET._replace(name=name))
    assert not m.allows(TOKEN, "c", SECRET) and m.allows(TOKEN, "c", SECRET._replace(name="s3"))


def test_the_hubs_own_identity(clock):
    m = memory(clock)
    # Never seen online (a hub upgraded from before this memory): nothing is refused.
    assert m.allows("", "kubelet", SECRET)
    m.remember("", "kubelet", PODS)
    assert m.hub_known
    assert m.allows("", "kubelet", AccessKey("get", "", "pods", "", "ns", "p"))
    assert not m.allows("", "kubelet", SECRET)
    clock.now += 10 * 365 * 86400        # no age bound for the hub's own identity
    assert m.allows("", "kubelet", PODS)


def test_what_anyone_was_allowed(clock):
    m = memory(clock)
    assert not m.anyone_allowed("c", SECRET)
    m.remember(TOKEN, "c", AccessKey("list", "", "secrets", "", "ns", ""))
    assert m.anyone_allowed("c", SECRET) and not m.anyone_allowed("d", SECRET)


def test_a_token_the_cloud_refused_is_forgotten(clock):
    # its ServiceAccount was deleted: the cloud says 401 to it from then on
    m = memory(clock)
    m.remember(TOKEN, "kubectl", SECRET)
    m.remember("Bearer other", "kubectl", SECRET)
    m.to_doc()
    m.forget(TOKEN)
    assert not m.knows(TOKEN) and not m.allows(TOKEN, "kubectl", SECRET)
    assert m.allows("Bearer other", "kubectl", SECRET) and m.dirty


def test_a_read_the_cloud_forbade_is_forgotten_with_the_lists_covering_it(clock):
    # a RoleBinding was removed: the cloud says 403 to what it allowed before
    m = memory(clock)
    m.remember(TOKEN, "kube-proxy", PODS)
    m.remember(TOKEN, "kube-proxy", SECRET)
    pod = AccessKey("get", "", "pods", "", "default", "p")
    m.forget_key(TOKEN, "kube-proxy", pod)
    assert not m.allows(TOKEN, "kube-proxy", pod)
    assert not m.allows(TOKEN, "kube-proxy", PODS)
    assert m.knows(TOKEN) and m.allows(TOKEN, "kube-proxy", SECRET)


def test_the_document_holds_salted_hashes_never_tokens_and_survives_a_restart(clock):
    m = memory(clock)
    m.remember(TOKEN, "c", SECRET)
    m.remember("", "kubelet", PODS)
    assert m.dirty
    doc = m.to_doc()
    assert not m.dirty
    text = json.dumps(doc)
    assert "0123456789abcdef" not in text
    again = memory(clock)
    assert again.load_doc(json.loads(text)) == 1
    assert again.allows(TOKEN, "c", SECRET) and not again.allows(TOKEN, "c", OTHER)
    assert again.hub_known and again.allows("", "kubelet", PODS)
    assert again.anyone_allowed("c", SECRET)
    # Another memory (another salt) does not recognise the same token.
    other = memory(clock)
    other.remember("Bearer x", "c", SECRET)
    assert other.to_doc()["tokens"][0][0] != doc["tokens"][0][0]


def test_expired_tokens_are_not_loaded(clock):
    m = memory(clock, ttl=100)
    m.remember(TOKEN, "c", SECRET)
    doc = m.to_doc()
    clock.now += 101
    assert memory(clock).load_doc(doc) == 0


@pytest.mark.parametrize("doc", [None, [], {"format": 2}, {"format": 1, "salt": "zz"},
                                 {"format": 1, "salt": "00", "tokens": [["h", 1.0, [["x"]]]],
                                  "hub": []}])
def test_a_damaged_document_is_refused(clock, doc):
    with pytest.raises(ValueError):
        memory(clock).load_doc(doc)


def test_only_news_makes_the_memory_dirty(clock):
    m = memory(clock, ttl=1000)
    m.remember(TOKEN, "c", SECRET)
    m.to_doc()
    m.remember(TOKEN, "c", SECRET)
    assert not m.dirty
    clock.now += 20
    m.remember(TOKEN, "c", SECRET)      # the expiry moved by more than ttl/100
    assert m.dirty


def test_keys_longer_than_any_name_are_not_kept_but_the_token_is_known(clock):
    # A client repeating 60 KB paths the cloud answers 404 (authorized, so remembered)
    # grew the memory and its persisted file by 60 KB a request: 67 MB after 600 requests.
    m = memory(clock)
    for i in range(300):
        long = AccessKey("nonresource", "", f"/api/{i}" + "x" * 60_000, "", "", "")
        m.remember(TOKEN, "kubelet", long)
        m.remember("", "kubelet", long._replace(name="n"))
    assert len(json.dumps(m.to_doc())) < 10_000
    assert m.knows(TOKEN) and m.hub_known
    longest = AccessKey("get", "", "configmaps", "", "ns", "n" * 253)  # still kept
    m.remember(TOKEN, "kubelet", longest)
    assert m.allows(TOKEN, "kubelet", longest)


def test_grants_know_when_the_cloud_last_confirmed_them(clock):
    m = memory(clock)
    assert m.confirmed_at(TOKEN, "kube-proxy", PODS) is None
    m.remember(TOKEN, "kube-proxy", PODS)
    clock.now += 10
    ns_list = AccessKey("list", "", "pods", "", "default", "")
    assert m.confirmed_at(TOKEN, "kube-proxy", ns_list) == clock.now - 10   # (covered)
    m.remember(TOKEN, "kube-proxy", ns_list)
    assert m.confirmed_at(TOKEN, "kube-proxy", ns_list) == clock.now        # the newest
    assert m.confirmed_at(TOKEN, "coredns", ns_list) is None
    restarted = memory(clock)
    restarted.load_doc(m.to_doc())
    assert restarted.confirmed_at(TOKEN, "kube-proxy", ns_list) == 0.0      # check again


def test_what_the_cloud_refuses_online_is_forgotten(clock):
    m = memory(clock)
    ns_list = AccessKey("list", "", "pods", "", "default", "")
    m.remember(TOKEN, "kube-proxy", PODS)
    m.remember(TOKEN, "kube-proxy", SECRET)
    m.dirty = False
    m.forget_key(TOKEN, "kube-proxy", ns_list)   # 403: the list of all namespaces goes too
    assert m.dirty
    assert not m.allows(TOKEN, "kube-proxy", ns_list)
    assert m.allows(TOKEN, "kube-proxy", SECRET) and m.knows(TOKEN)
    m.forget(TOKEN)                              # 401: the token is honoured for nothing
    assert not m.knows(TOKEN) and not m.allows(TOKEN, "kube-proxy", SECRET)



def test_a_token_accepted_within_two_minutes_is_forgotten_at_its_first_401(clock):
    # kube-apiserver keeps a webhook's verdict 2 min: a 401 since is a real refusal (a
    # deleted ServiceAccount's token, refused at once by its in-process authenticator)
    m = memory(clock)
    m.remember(TOKEN, "calico-node", SECRET)
    clock.now += 119
    assert m.refused(TOKEN)
    assert not m.knows(TOKEN) and not m.allows(TOKEN, "calico-node", SECRET)


def test_an_older_tokens_401_leaves_it_in_doubt_a_second_a_minute_on_forgets_it(clock):
    # not accepted for 2 min: its 401 may be kube-apiserver's token webhook being down
    m = memory(clock)
    m.remember(TOKEN, "calico-node", SECRET)
    clock.now += 300
    assert not m.refused(TOKEN)                  # the webhook's blip, maybe
    clock.now += 30
    assert not m.refused(TOKEN)                  # a retry soon after: still in doubt
    assert m.knows(TOKEN) and m.allows(TOKEN, "calico-node", SECRET)
    clock.now += 30
    assert m.refused(TOKEN)                      # refused a minute on: revoked
    assert not m.knows(TOKEN) and not m.allows(TOKEN, "calico-node", SECRET)


def test_an_accepted_answer_between_two_401s_clears_the_doubt(clock):
    m = memory(clock)
    m.remember(TOKEN, "calico-node", SECRET)
    clock.now += 300
    assert not m.refused(TOKEN)
    clock.now += 50
    m.remember(TOKEN, "calico-node", SECRET)     # the webhook is back
    clock.now += 300
    assert not m.refused(TOKEN)                  # a new blip, a new doubt
    assert m.knows(TOKEN)
    clock.now += 60
    assert m.refused(TOKEN) and not m.knows(TOKEN)
    assert not m.refused(TOKEN)                  # a token never accepted: nothing to forget


def test_a_token_loaded_from_disk_was_accepted_before_this_start(clock):
    m = memory(clock)
    m.remember(TOKEN, "calico-node", SECRET)
    again = memory(clock)
    again.load_doc(m.to_doc())
    assert not again.refused(TOKEN) and again.knows(TOKEN)


def test_a_service_accounts_token_is_forgotten_at_its_first_401_whatever_its_age(clock):
    # kube-apiserver checks a ServiceAccount's token itself, before any webhook: its 401 is
    # the token's deletion or its pod's, never an outage; a token of another issuer that
    # old is only in doubt
    claims = {"exp": clock.now + 86400, "sub": "system:serviceaccount:kube-system:coredns"}
    payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    sa_token = f"Bearer eyJhbGciOiJSUzI1NiJ9.{payload}.c2ln"
    oidc = jwt(clock.now + 86400)
    m = memory(clock)
    for token in (sa_token, oidc):
        m.remember(token, "coredns", SECRET)
    clock.now += 300
    assert m.refused(sa_token) and not m.knows(sa_token)
    assert not m.refused(oidc) and m.knows(oidc)


def test_a_rotated_token_inherits_what_the_one_it_replaced_was_allowed(clock):
    m = memory(clock)
    old, new = jwt(clock.now + 3600), jwt(clock.now + 7200)
    m.remember(old, "coredns@pod", SECRET)
    assert m.inherit(old, new)
    assert m.allows(new, "coredns@pod", SECRET) and not m.allows(new, "coredns@pod", OTHER)
    assert m.confirmed_at(new, "coredns@pod", SECRET) == 0.0   # the shared state asks again
    assert m.allows(old, "coredns@pod", SECRET)                 # still valid in the cloud
    clock.now += 3601                                          # by its own expiry, not old's
    assert not m.knows(old) and m.allows(new, "coredns@pod", SECRET)
    # a token never seen accepted passes on nothing, nor does an expired new one
    assert not m.inherit("Bearer never-seen", jwt(clock.now + 60))
    assert not m.inherit(new, jwt(clock.now - 1))
    m2 = memory(clock)
    m2.load_doc(m.to_doc())
    assert m2.allows(new, "coredns@pod", SECRET)


def test_a_clock_set_back_does_not_keep_a_refused_token_in_doubt(clock):
    """The first 401 seen before the node's clock was set back a day: every later 401 came
    "before" it, so a revoked token stayed in doubt, and honoured offline, for a day."""
    m = memory(clock)
    m.remember(TOKEN, "calico-node", SECRET)
    m.load_doc(m.to_doc())                       # a restart: accepted before this start
    assert not m.refused(TOKEN)                  # in doubt
    clock.now -= 86400
    assert not m.refused(TOKEN)                  # the doubt starts again by the new clock
    clock.now += 60
    assert m.refused(TOKEN) and not m.knows(TOKEN)
