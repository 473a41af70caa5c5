"""The export job, stage by stage: preflight, compression, graphs and
engines, validation (parity and the quality gate), manifest."""
