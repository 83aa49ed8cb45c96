"""The domain: jobs, their lifecycle and one module per use case. No boto3, no httpx, no HTTP."""
