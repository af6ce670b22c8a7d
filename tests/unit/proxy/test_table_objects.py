"""A cache agent's Table is asked of the cloud with each row's whole object."""

from __future__ import annotations

import pytest

from yurthub.proxy.tables import whole_objects_path


@pytest.mark.parametrize("path_qs,upstream", [
    ("/api/v1/pods", "/api/v1/pods?includeObject=Object"),
    ("/api/v1/pods?limit=500", "/api/v1/pods?limit=500&includeObject=Object"),
    # kubectl's own choice is replaced, every other parameter kept as it came.
    ("/api/v1/namespaces/a/pods?includeObject=None&labelSelector=app%3Dx&limit=5",
     "/api/v1/namespaces/a/pods?labelSelector=app%3Dx&limit=5&includeObject=Object"),
    ("/api/v1/pods?includeObject=Metadata&include%4Fbject=None",
     "/api/v1/pods?includeObject=Object"),
    ("/api/v1/pods?includeObject=Object", "/api/v1/pods?includeObject=Object"),
    # What kube-apiserver refuses is left for it to refuse (a 400 Status).
    ("/api/v1/pods?includeObject=Everything", None),
])
def test_whole_objects_path(path_qs, upstream):
    assert whole_objects_path(path_qs) == upstream
