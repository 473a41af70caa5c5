"""Compress an encoder: the compressor, rank policies and the size search,
measured sensitivities, and the error compensation after a cut (the
distillations, refine and context tuning, are in ``model/distillation``)."""
