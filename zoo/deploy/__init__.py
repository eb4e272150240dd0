"""Deploy: the reparameterization walker, export (ONNX, torch.export, TorchScript) and the runtimes people
deploy with (int8, OpenVINO, ExecuTorch, Core ML, bf16: :mod:`zoo.deploy.runtimes`)."""
from .export import FORMATS, INT8_FORMATS, OPSET, export_onnx, static_hw_reason
from .reparam import foldable_modules, reparameterize
from .runtimes import calibration_batches, export_and_check, quantize

__all__ = ['FORMATS', 'INT8_FORMATS', 'OPSET', 'calibration_batches', 'export_and_check', 'export_onnx',
           'foldable_modules', 'quantize', 'reparameterize', 'static_hw_reason']
