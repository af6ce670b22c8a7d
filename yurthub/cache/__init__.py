"""The cache: what is cached (policy), the tee and the writer thread that fill it, the views
that record fully synced collections, and the offline reader that answers from them.

This package may import storage, kube, errors, config and metrics (docs/ARCHITECTURE.md).
"""
