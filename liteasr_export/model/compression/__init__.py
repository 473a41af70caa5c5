"""Compress an encoder: the compressor, rank policies and the size search,
measured sensitivities, and the recoveries after a cut (error compensation,
distillation by refine)."""
