"""The hub's own identity: bootstrap, discovery, CSRs, certificate files and rotation,
kubelet's certificate, and the serving certificate of 10268 (see ``hub.py``)."""
