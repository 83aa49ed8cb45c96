"""fluxrelay: a serverless gateway for FLUX.1 [schnell] + LoRA image generation on WaveSpeed."""
