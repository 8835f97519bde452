"""``maskface bench``: latency, throughput, accuracy and roofline figures per backend and batch size.

One module per concern; importing this package imports none of torch, onnxruntime or tensorrt:

- ``timing``      time-based warm-up and measurement loop (trtexec style), latency statistics
- ``memory``      peak host memory (VmHWM) and device memory in use
- ``flops``       FLOPs per image, counted from the ONNX generator graph (or torch's flop counter)
- ``peaks``       peak TFLOPS of common GPUs, an estimate for the CPU
- ``environment`` CPU, GPU, driver, CUDA and package versions, git commit
- ``models``      the model under test: checkpoint or random init, its exports and engines, fixed inputs
- ``variants``    bench's rows: the registry's backends (backends/registry.py), as they are or as variants
- ``runners``     one runner per row, opening its registry backend (torch, onnxruntime, OpenVINO, engines)
- ``suite``       runs the runners over the batch sizes and collects the rows
- ``report``      rich table, JSON, CSV and a PNG plot of images/s against batch size
- ``targets``     the benchmark issue's performance targets, checked against JSON reports
"""
