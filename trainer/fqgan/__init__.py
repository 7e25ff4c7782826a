"""fqgan: the FQGAN image tokenizer (model, checkpoints, ONNX export, training)."""

__version__ = "0.1.0"
