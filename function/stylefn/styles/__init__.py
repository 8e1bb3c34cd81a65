"""The models: the catalog read from their metadata, ONNX Runtime sessions (CUDA, falling back to
the CPU), painting in tiles, and each style's thumbnail."""
