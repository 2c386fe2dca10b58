"""Turn a (collapsed) model into a deployable artifact: a Hugging Face directory, an ONNX decoder
with KV cache, and a manifest that pins every file by hash and records the parity check.

Entry point: :func:`qcompress.export.artifact.export_artifact`. Formats are exporters looked up in
the registry (``qcompress.exporters`` entry points), so plugins can add their own.
"""
