"""The runtime core: everything needed to run an exported model, and nothing
that needs torch or transformers (an import-linter contract forbids them).

Audio and the log-mel frontend (:mod:`.frontend`), the tokenizer, the decoding
loop (:mod:`.decoding`, :mod:`.windowed`), output formats, the manifest and
graph facts (:mod:`.manifest`, :mod:`.graphs`), checksums (:mod:`.integrity`),
errors, and the ONNX Runtime transcriber (:mod:`.runtime`).
"""
