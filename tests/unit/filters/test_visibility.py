"""Resume points: no client watches on from data filtered under an older configuration."""

from __future__ import annotations

from yurthub.filters.visibility import Visibility

PROXY = ("kube-proxy", "discovery.k8s.io", "endpointslices")
DNS = ("coredns", "discovery.k8s.io", "endpointslices")


def test_a_list_served_before_a_change_is_outdated_and_one_after_it_is_not():
    v = Visibility()
    before = v.view(PROXY)
    before.served("100")
    assert not v.outdated(PROXY, "100")
    v.forget({PROXY})                       # the client's filters changed
    assert v.outdated(PROXY, "100")
    assert before.changed()
    after = v.view(PROXY)
    assert not after.changed()
    after.served("120")
    assert not v.outdated(PROXY, "120")
    assert not v.outdated(PROXY, "110")     # never served: not known to be outdated


def test_a_list_that_began_before_a_change_and_ended_after_it_is_outdated():
    v = Visibility()
    view = v.view(PROXY)                    # taken when the list began
    v.forget({PROXY})
    view.served("100")                      # its resourceVersion recorded at its end
    assert v.outdated(PROXY, "100")


def test_a_change_moves_only_the_clients_it_touched():
    v = Visibility()
    v.view(PROXY).served("100")
    v.view(DNS).served("100")
    v.forget({DNS})
    assert not v.outdated(PROXY, "100") and v.outdated(DNS, "100")


def test_the_newest_list_at_a_version_decides_and_old_points_fall_out():
    v = Visibility(resume_points=2)
    v.view(PROXY).served("100")
    v.forget({PROXY})
    v.view(PROXY).served("100")             # listed again at the same version
    assert not v.outdated(PROXY, "100")     # (so a relist is never refused in a loop)
    v.view(PROXY).served("101")
    v.forget({PROXY})
    v.view(PROXY).served("102")
    v.view(PROXY).served("103")             # "100" and "101" fell out of the LRU
    assert not v.outdated(PROXY, "101")


def test_a_change_of_an_agents_filters_reaches_each_of_its_components():
    # The filters go by the User-Agent's name: in-cluster kube-proxy (cached as
    # kube-proxy@pod) and one run by another user (kube-proxy@1000) get kube-proxy's; a
    # change of them (told as kube-proxy's) must outdate what each of them was served.
    v = Visibility()
    pod = ("kube-proxy@pod", "discovery.k8s.io", "endpointslices")
    other_user = ("kube-proxy@1000", "discovery.k8s.io", "endpointslices")
    pod_view = v.view(pod)
    pod_view.served("100")
    v.view(other_user).served("100")
    v.view(DNS).served("100")
    pod_view.mark(("default", "web-lb"), True, 90)
    v.forget({PROXY})
    assert v.outdated(pod, "100") and v.outdated(other_user, "100")
    assert pod_view.changed()
    assert not v.outdated(DNS, "100")
    assert not v.view(pod).is_dropped(("default", "web-lb"))  # it relists: starts afresh
