"""ONNX Runtime deployment of exported artifacts: generation and perplexity.

Deliberately free of torch, transformers, quimb and cirq (numpy, onnxruntime and tokenizers only),
so a deployed model needs none of the training stack.
"""

from qcompress.runtime.causal_lm import OnnxCausalLM

__all__ = ["OnnxCausalLM"]
