"""The API proxy on port 10261: routing, the remote proxy (cloud) and the local proxy (cache)."""
