"""Check artifacts: numerical parity against PyTorch (:mod:`.parity`,
:mod:`.compare`) and transcripts against the dense model (:mod:`.quality_gate`)."""
