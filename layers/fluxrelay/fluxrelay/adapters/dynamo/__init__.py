"""The DynamoDB adapters on the single table: jobs, API keys, per-key limits, upstream slots."""
