"""Response filters: they change what a client sees *and* what is cached (one per module)."""
