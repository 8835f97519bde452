"""The fused AdaIN kernel and its TensorRT plugin (filled by later issues)."""
