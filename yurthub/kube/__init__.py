"""The pure Kubernetes core: request classification, selectors, patches, framing, Status bodies.

Nothing in this package touches sockets, files, threads or clocks.
"""
