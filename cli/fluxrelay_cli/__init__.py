"""The `fluxrelay` command: generate images, follow jobs, manage keys, receive webhooks."""
