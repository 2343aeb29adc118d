"""Faces from images and streams: the landmarker (one image), the engine (a stream), the pipeline."""
