"""Pydantic models of every boundary: the WaveSpeed wire shapes, the workflow tasks, uploads."""

# The one WaveSpeed model this service fronts (its submit path and every prediction's `model`).
# Here, not beside the upstream's models: a prediction names it without building those.
MODEL_ID = "wavespeed-ai/flux-schnell-lora"
