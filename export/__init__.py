"""torch -> ONNX -> TensorRT engine (filled by later issues)."""
