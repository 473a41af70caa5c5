"""The PyTorch model domain: where a model comes from (:mod:`.sources`), the
low-rank modules and the lite-whisper checkpoint (:mod:`.lowrank`,
:mod:`.lite_whisper`), compression (:mod:`.compression`) and the PyTorch
reference transcriber. Imports the core only."""
