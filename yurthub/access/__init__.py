"""Who may use the hub: peer identities, the cache's component keys, and what the cloud was
seen to allow, checked while it is away (see guard.py and docs/SECURITY.md)."""
