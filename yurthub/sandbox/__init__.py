"""The sandbox kube-apiserver: a real HTTP server that behaves like kube-apiserver for a node."""
