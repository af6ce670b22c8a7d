"""The sandbox kube-apiserver: a real HTTP server that behaves like kube-apiserver for a node.

``Sandbox(...).start()`` (or ``tests.fixtures.sandboxes.running(...)``) runs one in background
threads; ``tests.fixtures.sandboxes.SandboxProcess`` runs one in a child process.
"""

from kubesandbox.server import Sandbox, SandboxOptions, start

__all__ = ["Sandbox", "SandboxOptions", "start"]
