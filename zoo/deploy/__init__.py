"""Deploy: the reparameterization walker and export (ONNX, torch.export, TorchScript)."""
from .export import FORMATS, OPSET, export_and_check, export_onnx, static_hw_reason
from .reparam import foldable_modules, reparameterize

__all__ = ['FORMATS', 'OPSET', 'export_and_check', 'export_onnx', 'foldable_modules', 'reparameterize',
           'static_hw_reason']
