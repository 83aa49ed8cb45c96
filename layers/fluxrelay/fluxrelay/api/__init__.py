"""The HTTP edge: routes, the envelope, auth, idempotency and the WaveSpeed prediction shape."""
