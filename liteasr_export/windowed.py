"""What every backend (PyTorch, ONNX Runtime, TensorRT) shares: window
checks, the numpy-frontend fallback, batching of long audio and the greedy
loop. A backend supplies ``encode``, ``decoder_step`` and, when it has a
frontend graph or engine, ``_run_frontend``."""

from __future__ import annotations

import numpy as np

from .decoding import DecoderStep, greedy_decode
from .errors import AudioError
from .frontend import N_SAMPLES, SAMPLE_RATE, check_samples, log_mel, resample, split_windows


class WindowedTranscriber:
    """Base of the runtime transcribers; subclasses set ``n_mels``,
    ``batch_size``, ``tokenizer``, ``options`` and ``frontend`` (None: numpy)."""

    n_mels: int
    batch_size: int
    frontend: object | None = None

    def _run_frontend(self, window: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def encode(self, features: np.ndarray) -> list:
        raise NotImplementedError

    def decoder_step(self, cross: list) -> DecoderStep:
        raise NotImplementedError

    def features(self, window: np.ndarray) -> np.ndarray:
        """Normalized log-mel ``(n_mels, 3000)`` of one window of <= 30 s."""
        window = np.ascontiguousarray(window, dtype=np.float32)
        if window.ndim != 1 or window.size == 0 or window.size > N_SAMPLES:
            raise AudioError(f"a window holds 1 to {N_SAMPLES} mono samples, got shape {window.shape}",
                             "pass 16 kHz mono audio; transcribe() splits long audio")
        if self.frontend is None:
            return log_mel(window, self.n_mels)
        return self._run_frontend(window)

    def transcribe_features(self, features: np.ndarray) -> list[list[int]]:
        """Greedy token ids (without prompt and <|endoftext|>) per window of
        ``features`` (B, n_mels, 3000)."""
        features = np.asarray(features)
        if features.ndim != 3 or features.shape[1] != self.n_mels:
            raise AudioError(f"features must be (batch, {self.n_mels}, 3000), got {features.shape}",
                             "compute them with liteasr_export.frontend.log_mel")
        return greedy_decode(self.decoder_step(self.encode(features)), features.shape[0], self.options)

    def transcribe(self, audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> str:
        """Text of mono audio of any length; other sample rates are resampled."""
        return self.transcribe_many([audio], sample_rate)[0]

    def transcribe_many(self, audios: list[np.ndarray], sample_rate: int = SAMPLE_RATE) -> list[str]:
        """Texts of several recordings, their windows encoded and decoded
        ``batch_size`` at a time across recordings (short clips then share a
        batch instead of each paying a batch-1 encoder and decoder)."""
        windows: list[np.ndarray] = []
        owners: list[int] = []
        for index, audio in enumerate(audios):
            audio = np.asarray(audio, dtype=np.float32)
            if audio.size == 0:
                raise AudioError("audio has no samples", "pass a non-empty recording")
            for window in split_windows(resample(check_samples(audio), sample_rate, SAMPLE_RATE)):
                windows.append(window)
                owners.append(index)
        tokens: list[list[int]] = [[] for _ in audios]
        for start in range(0, len(windows), self.batch_size):
            features = np.stack([self.features(w) for w in windows[start : start + self.batch_size]])
            batch = self.transcribe_features(features)
            for owner, ids in zip(owners[start : start + self.batch_size], batch):
                tokens[owner].extend(ids)
        return [self.tokenizer.decode(ids) for ids in tokens]
