"""The sandbox kube-apiserver: a real HTTP server that behaves like kube-apiserver for a node.

``Sandbox(...).start()`` (or ``yurthub.sandbox.testing.running(...)``) runs one in background
threads; ``yurthub.sandbox.testing.SandboxProcess`` runs one in a child process.
"""

from yurthub.sandbox.server import Sandbox, SandboxOptions, start

__all__ = ["Sandbox", "SandboxOptions", "start"]
