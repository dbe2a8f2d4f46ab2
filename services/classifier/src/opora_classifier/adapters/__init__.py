"""The classifier's I/O beyond the broker: the routing load projection in KV."""
