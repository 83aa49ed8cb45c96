"""Pydantic models of every boundary: the WaveSpeed wire shapes, the workflow tasks, uploads."""
