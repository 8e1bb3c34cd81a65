"""Export of trained checkpoints to ONNX with a parity check (see export/onnx_export.py)."""
