"""The fused AdaIN + LeakyReLU kernel and its TensorRT plugin, one module per concern:

- ``config``      launch rules and checks (plain Python)
- ``reference``   the numpy reference
- ``fused_adain`` the Triton kernel and its launcher (imports triton)
- ``torch_op``    torch.ops.maskface.fused_adain (imports torch)
- ``ptx``         ahead-of-time PTX for sm_80..sm_90, built without a GPU
- ``onnx_op``     the FusedAdaIN ONNX node: exporter translation and numpy OpRun
- ``trt_plugin``  the TensorRT plugin maskface::FusedAdaIN (imports tensorrt; importing registers it)

Importing this package imports none of torch, triton or tensorrt.
"""
