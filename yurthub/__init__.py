"""yurthub: an edge-autonomy gateway for Kubernetes, a caching reverse proxy for node components."""

__version__ = "0.2.0"
