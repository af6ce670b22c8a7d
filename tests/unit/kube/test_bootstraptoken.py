"""Bootstrap tokens, detached JWS and CA pins, against kubeadm's and cluster-bootstrap's own
test vectors (``bootstrap_vectors.json``, see its ``_origin``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from yurthub.kube import bootstraptoken as bt

VECTORS = json.loads((Path(__file__).parent / "bootstrap_vectors.json").read_text())


@pytest.mark.parametrize("v", VECTORS["jws"], ids=["content", "empty", "no-secret"])
def test_signatures_are_kubeadms_byte_for_byte(v):
    assert bt.detached_signature(v["content"], v["id"], v["secret"]) == v["signature"]
    bt.verify_detached(v["signature"], v["content"], v["id"], v["secret"])


@pytest.mark.parametrize("change, why", [
    (lambda v: {**v, "content": v["content"] + " "}, "does not match"),
    (lambda v: {**v, "secret": "another secret"}, "does not match"),
    (lambda v: {**v, "id": "abcdef"}, "names key 'joshua'"),
    (lambda v: {**v, "signature": v["signature"] + "foo"}, "does not match"),
    (lambda v: {**v, "signature": v["signature"].replace("..", ".e30.")}, "detached"),
    (lambda v: {**v, "signature": "e30..abc"}, "HS256"),
])
def test_a_changed_signature_content_secret_or_id_is_refused(change, why):
    v = change(VECTORS["jws"][0])
    with pytest.raises(bt.BadSignature, match=why):
        bt.verify_detached(v["signature"], v["content"], v["id"], v["secret"])


def test_the_ca_pin_is_kubeadms():
    cert = x509.load_pem_x509_certificate(VECTORS["pin"]["cert_pem"].encode())
    spki = cert.public_key().public_bytes(serialization.Encoding.DER,
                                          serialization.PublicFormat.SubjectPublicKeyInfo)
    assert bt.ca_pin(spki) == VECTORS["pin"]["hash"]
    assert bt.normalize_pin(VECTORS["pin"]["hash"].upper().replace("SHA256", "sha256")) == \
        VECTORS["pin"]["hash"]


@pytest.mark.parametrize("bad", ["xyz", "sha256:0011", "md5:" + "0" * 64,
                                 "sha256:" + "0" * 128, "sha256:" + "g" * 64])
def test_malformed_pins_are_refused(bad):
    with pytest.raises(ValueError):
        bt.normalize_pin(bad)


@pytest.mark.parametrize("token, ok", [
    ("abcdef.0123456789abcdef", True), (" abcdef.0123456789abcdef\n", True),
    ("ABCDEF.0123456789abcdef", False), ("abcde.0123456789abcdef", False),
    ("abcdef.0123456789abcde", False), ("abcdef0123456789abcdef", False), ("", False),
])
def test_token_format(token, ok):
    if ok:
        assert bt.parse_token(token) == ("abcdef", "0123456789abcdef")
    else:
        with pytest.raises(ValueError) as e:
            bt.parse_token(token)
        assert "0123456789abcdef" not in str(e.value)
