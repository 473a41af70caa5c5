"""What every backend (PyTorch, ONNX Runtime, TensorRT) shares: window
checks, the numpy-frontend fallback, the scheduling of windows across
recordings, and decoding through :mod:`liteasr_export.core.decoding`. A backend
supplies ``encode``, ``decoder_step`` and, when it has a frontend graph or
engine, ``_run_frontend``.

Windows of different recordings are encoded and decoded together,
``batch_size`` at a time, so short clips do not each pay a batch-1 encoder
and decoder. With timestamps, each recording moves on by its last complete
segment, as openai-whisper's ``transcribe`` does (its next window is known
only after the previous one is decoded); without, long audio is cut in its
quietest moments (:func:`~liteasr_export.core.frontend.window_bounds`) and all of
its windows are independent. Either way a window's result depends only on
its own audio and settings, never on the batch it shares.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

import numpy as np

from liteasr_export.core.decoding import (KEPT_BEST, NO_SPEECH, REPETITIVE, TIME_PRECISION, DecoderStep, DecodingOptions, SearchOptions,
                       WindowDecode, build_options, decode_with_fallback, detect_language)
from liteasr_export.core.errors import AudioError, LiteASRError
from liteasr_export.core.frontend import HOP_LENGTH, N_FRAMES, N_SAMPLES, SAMPLE_RATE, check_samples, log_mel, resample, window_bounds
from liteasr_export.core.graphs import MEL_FRAMES_PER_ENCODER_FRAME
from liteasr_export.core.tokenizer import check_language

#: mel frames per encoder position (a timestamp step)
INPUT_STRIDE = MEL_FRAMES_PER_ENCODER_FRAME
#: the ``audio_context`` of whole 30 s windows (None means the same)
FULL_CONTEXT = "full"
#: the ``audio_context`` that encodes each window's audio plus a tail
AUTO_CONTEXT = "auto"
#: mel frames encoded after a window's audio under ``auto`` (1 s), so that the
#: model still hears where the speech ends and can close its text
AUTO_TAIL_FRAMES = 100
#: the lengths ``auto`` encodes with (mel frames: 3 to 10 s by 1 s, then 12,
#: 15, 20, 25 and 30 s): a few, so that ONNX Runtime and TensorRT reuse their
#: plans and windows of one length batch together, but fine where most short
#: audio lies (a 4 s clip encodes 5 s, not 10; a 6 s one 7 s, not 8)
AUTO_BUCKETS = (300, 400, 500, 600, 700, 800, 900, 1000, 1200, 1500, 2000, 2500, N_FRAMES)


def audio_context_frames(audio_context: int | str | None) -> int:
    """The mel frames each window is encoded with under ``audio_context``:
    None or ``"full"``: 3000 (30 s, Whisper's own padding); an int N: N
    (100 per second), even (the encoder halves it), at least 2; more than
    3000 is 30 s."""
    if audio_context is None or audio_context in (FULL_CONTEXT, AUTO_CONTEXT):
        return N_FRAMES  # auto: windows of 30 s, each encoded at its own length (auto_context_frames)
    if isinstance(audio_context, bool) or not isinstance(audio_context, (int, np.integer)):
        raise LiteASRError(f"`audio_context` must be \"{FULL_CONTEXT}\", \"{AUTO_CONTEXT}\" or a number of mel "
                           f"frames, got {audio_context!r}",
                           f"pass \"{FULL_CONTEXT}\" (30 s), \"{AUTO_CONTEXT}\" or an even number of mel frames "
                           "(100 per second)",
                           field="audio_context")
    if audio_context < INPUT_STRIDE or audio_context % INPUT_STRIDE:
        raise LiteASRError(f"`audio_context` must be an even number of mel frames >= {INPUT_STRIDE}, "
                           f"got {audio_context}",
                           f"pass an even number (100 mel frames per second), or \"{FULL_CONTEXT}\"",
                           field="audio_context")
    return min(int(audio_context), N_FRAMES)


def parse_audio_context(text: str) -> int | str:
    """An ``audio_context`` as a person writes it: ``full``, ``auto``, a
    number of seconds (``10``, ``7.5s``) or of mel frames (``1000f``, 100
    per second), made even and at most 3000."""
    value = str(text).strip().lower()
    if value in (FULL_CONTEXT, AUTO_CONTEXT):
        return value
    frames_given = value.endswith("f")
    number = value[:-1] if frames_given or value.endswith("s") else value
    try:  # a decimal number only: float() alone also takes "1_000", inner spaces, "inf" and "nan"
        amount = float(number) if number and not number.strip("0123456789.eE+-") else float("nan")
    except ValueError:
        amount = float("nan")
    if not amount > 0 or amount == float("inf"):
        raise LiteASRError(f"`audio_context` must be full, auto, seconds (10, 7.5s) or mel frames (1000f), "
                           f"got {text!r}", "pass full, auto, a number of seconds, or of mel frames with f",
                           field="audio_context")
    frames = amount if frames_given else amount * SAMPLE_RATE / HOP_LENGTH
    frames = int(-(-frames // INPUT_STRIDE) * INPUT_STRIDE)  # up to even: the encoder halves it
    return min(max(frames, INPUT_STRIDE), N_FRAMES)


def auto_context_frames(samples: int) -> int:
    """The mel frames ``auto`` encodes a window of ``samples`` with: its
    audio plus :data:`AUTO_TAIL_FRAMES`, rounded up to the next of
    :data:`AUTO_BUCKETS` (a full window: 30 s)."""
    need = -(-samples // HOP_LENGTH) + AUTO_TAIL_FRAMES
    return next((bucket for bucket in AUTO_BUCKETS if bucket >= need), N_FRAMES)


def shortest_context_frames(audio_context: int | str | None) -> int:
    """The fewest mel frames a window is encoded with under ``audio_context``
    (what a backend must accept)."""
    return AUTO_BUCKETS[0] if audio_context == AUTO_CONTEXT else audio_context_frames(audio_context)


@dataclass(frozen=True)
class TranscribeOptions:
    """What users choose about decoding (the CLI's options).

    ``timestamps``: segments with times, and long audio moves on by its last
    complete segment (its windows then follow one another); off by default
    in the library, whose ``transcribe``/``transcribe_many`` return text:
    its windows are cut in quiet moments and decoded in parallel.
    liteasr-transcribe turns them on (its subtitles need them).
    ``language``: a code; ``auto`` detects it from each recording's first
    window (multilingual models); None keeps the language the model was
    loaded or exported with (English unless said otherwise).
    ``audio_context``: how much audio a window holds and the encoder sees.
    None: the model's default (``auto`` for an export tuned for trimmed
    contexts with ``--context-tune``, whose manifest says so; else full).
    ``"full"``: 30 s windows padded to 3000 mel frames (Whisper's way).
    An int N: windows of at most N mel frames (N / 100 s; even, at most
    3000), encoded at N frames with the positional table's first N / 2
    rows, which costs less the shorter N is. Long audio is then cut into
    more, shorter windows: no audio is dropped. ``"auto"``: 30 s windows,
    each encoded at its audio plus 1 s, rounded up to one of :data:`AUTO_BUCKETS`
    (:func:`auto_context_frames`). On a trimmed context, a window whose
    first decode fails the fallback test (a loop, the token limit, too
    unlikely) is decoded again on the full 30 s before the temperature
    fallback starts, and its report says so (not without a fallback: then
    each window is decoded once). Stock Whisper models lose
    accuracy on a short context; the backend must take it (ONNX Runtime with
    an export whose encoder length is dynamic, PyTorch, TensorRT engines
    whose profiles cover it)."""

    search: SearchOptions = SearchOptions()
    timestamps: bool = False
    language: str | None = None
    task: str = "transcribe"
    audio_context: int | str | None = None


#: the decoding of the first release (and of its measured figures): one
#: greedy pass per window, no timestamps, no fallback
PLAIN_GREEDY = TranscribeOptions(search=SearchOptions.greedy(), timestamps=False)


@dataclass
class Segment:
    start: float  # seconds
    end: float
    text: str
    tokens: list[int] = field(default_factory=list)


@dataclass
class WindowReport:
    """How one window was decoded (``--json``): where it lay, at which
    temperature, whether it fell back and what the thresholds saw."""

    start: float
    end: float
    temperature: float
    fallback: bool
    outcome: str  # ok, no-speech, fallback-exhausted, dropped-repetitive
    avg_logprob: float
    compression_ratio: float
    no_speech_prob: float
    temperatures_tried: list[float]
    audio_context: int = N_FRAMES  # mel frames the kept decode was encoded with
    full_context_retry: bool = False  # decoded again on 30 s after the trimmed context failed


@dataclass
class Transcript:
    text: str
    duration: float
    language: str | None
    language_probability: float | None  # when detected
    segments: list[Segment]
    windows: list[WindowReport]

    def to_dict(self) -> dict:
        data = asdict(self)
        for segment in data["segments"]:
            segment.pop("tokens")
        return data


def _finite(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def timestamp_segments(tokens: list[int], timestamp_begin: int, offset: float, window_frames: int
                       ) -> tuple[list[tuple[float, float, list[int]]], int]:
    """Segments of one window decoded with timestamps, and how many mel
    frames to move on, as openai-whisper's ``transcribe``: the window is cut
    at each pair of consecutive timestamps; when it ends in a single
    timestamp everything was heard and the whole window is consumed,
    otherwise the unfinished last segment is dropped and the next window
    starts at the last complete one's end."""
    is_ts = [t >= timestamp_begin for t in tokens]
    single_ending = is_ts[-2:] == [False, True]
    pairs = [i for i in range(1, len(tokens)) if is_ts[i - 1] and is_ts[i]]
    segments = []
    if pairs:
        cuts = pairs + ([len(tokens)] if single_ending else [])
        last = 0
        for cut in cuts:
            piece = tokens[last:cut]
            segments.append((offset + (piece[0] - timestamp_begin) * TIME_PRECISION,
                             offset + (piece[-1] - timestamp_begin) * TIME_PRECISION, piece))
            last = cut
        advance = window_frames if single_ending else (tokens[last - 1] - timestamp_begin) * INPUT_STRIDE
    else:
        duration = window_frames * HOP_LENGTH / SAMPLE_RATE
        stamps = [t for t in tokens if t >= timestamp_begin]
        if stamps and stamps[-1] != timestamp_begin:
            duration = (stamps[-1] - timestamp_begin) * TIME_PRECISION
        segments.append((offset, offset + duration, tokens))
        advance = window_frames
    # a timestamp past the window (possible when the window is shorter than the 30 s its
    # timestamps can name: an audio context) moves on by the window
    return segments, advance if 0 < advance <= window_frames else window_frames


class _Recording:
    """One recording's progress: which windows are ready, and what was decoded."""

    def __init__(self, audio: np.ndarray, timestamps: bool, language: int | None, detect: bool,
                 window_frames: int = N_FRAMES) -> None:
        self.audio = audio
        self.timestamps = timestamps
        self.window_frames = window_frames  # the longest window (the audio context)
        self.frames = -(-audio.size // HOP_LENGTH)  # mel frames of content, the last one partial
        self.seek = 0  # frames (timestamps)
        self.bounds = None if timestamps else window_bounds(audio, window_frames * HOP_LENGTH)
        self.next = 0  # index into bounds (no timestamps)
        self.language = language
        self.language_probability: float | None = None
        self.detect = detect  # language still to be detected
        self.tokens: list[int] = []
        self.segments: list[Segment] = []
        self.windows: list[WindowReport] = []

    def ready(self) -> list[tuple[int, int]]:
        """(start, end) samples of the windows that can be decoded now."""
        if self.timestamps:
            if self.seek >= self.frames:
                return []
            end = min(self.seek + self.window_frames, self.frames)
            return [(self.seek * HOP_LENGTH, min(end * HOP_LENGTH, self.audio.size))]
        pending = self.bounds[self.next:]
        return pending[:1] if self.detect else pending


class WindowedTranscriber:
    """Base of the backends (each a :class:`~liteasr_export.core.runner.Runner`);
    subclasses set ``name``, ``n_mels``, ``vocab_size``, ``batch_size``,
    ``tokenizer``, ``options`` (the model's base :class:`DecodingOptions`),
    ``settings`` and ``frontend`` (None: numpy), and supply ``encode``,
    ``encode_outputs``, ``decoder_step`` and, with a frontend graph or engine,
    ``_run_frontend``."""

    name: str
    n_mels: int
    vocab_size: int
    batch_size: int
    options: DecodingOptions
    settings: TranscribeOptions = TranscribeOptions()
    frontend: object | None = None
    #: the ``audio_context`` used when the settings leave it None: ``auto``
    #: for a model tuned for trimmed contexts (its manifest or config says
    #: so), else ``full``
    default_audio_context: int | str = FULL_CONTEXT

    def _run_frontend(self, window: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def encode(self, features: np.ndarray) -> list:
        raise NotImplementedError

    def encode_outputs(self, features: np.ndarray) -> tuple[object, dict[str, np.ndarray]]:
        raise NotImplementedError

    def artifact(self, graph: str) -> str:
        """What runs ``graph`` (``encoder``, ``decoder``), as reports name it."""
        return f"{self.name} {graph}"

    def decoder_step(self, cross: list) -> DecoderStep:
        raise NotImplementedError

    def _check_audio_context(self, frames: int) -> None:
        """Refuse an audio context (mel frames) this backend cannot encode;
        a backend that takes shorter inputs overrides this."""
        if frames != N_FRAMES:
            raise LiteASRError(f"{self.name} encodes whole 30 s windows only, not `audio_context={frames}`",
                               f"leave `audio_context` at \"{FULL_CONTEXT}\", or use ONNX Runtime or PyTorch",
                               field="audio_context")

    @property
    def context_frames(self) -> int:
        """Mel frames each window is encoded with (the settings' ``audio_context``)."""
        return audio_context_frames(self.audio_context)

    @property
    def audio_context(self) -> int | str:
        """The settings' ``audio_context``, or this model's default when they leave it None."""
        chosen = self.settings.audio_context
        return self.default_audio_context if chosen is None else chosen

    def features(self, window: np.ndarray) -> np.ndarray:
        """Normalized log-mel ``(n_mels, 3000)`` of one window of <= 30 s."""
        window = np.ascontiguousarray(window, dtype=np.float32)
        if window.ndim != 1 or window.size == 0 or window.size > N_SAMPLES:
            raise AudioError(f"a window holds 1 to {N_SAMPLES} mono samples, got shape {window.shape}",
                             "pass 16 kHz mono audio; transcribe() splits long audio")
        if self.frontend is None:
            return log_mel(window, self.n_mels)
        return self._run_frontend(window)

    # ------------------------------------------------------------ options

    def _model_language(self) -> str | None:
        """The language of the model's own prompt (None for English-only models)."""
        if not self.tokenizer.is_multilingual or len(self.options.prompt) < 2:
            return None
        codes = {v: k for k, v in self.tokenizer.language_ids.items()}
        return codes.get(self.options.prompt[1], "en")

    def decoding_options(self, settings: TranscribeOptions | None = None) -> DecodingOptions:
        """The token-level options for ``settings`` (default: this transcriber's)."""
        s = settings or self.settings
        language = s.language if s.language is not None else self._model_language()
        check_language(self.tokenizer, language, s.task)
        return build_options(self.tokenizer, self.vocab_size, self.options.suppress, self.options.suppress_begin,
                             language, self.options.max_new_tokens, s.task, s.timestamps)

    def configure(self, settings: TranscribeOptions) -> "WindowedTranscriber":
        """Use ``settings`` from now on (checked against the model first)."""
        self.decoding_options(settings)
        chosen = settings.audio_context
        self._check_audio_context(shortest_context_frames(self.default_audio_context if chosen is None else chosen))
        self.settings = settings
        return self

    # ------------------------------------------------------------ decoding

    def _decode(self, features: np.ndarray, prompts: np.ndarray, options: DecodingOptions,
                keys: list[int], detect: np.ndarray | None, frames: int | None = None) -> list[WindowDecode]:
        """Decode windows whose features are encoded at ``frames`` mel frames
        (default: the settings' context). On a trimmed context the first
        temperature alone is tried; the windows that fail it are decoded
        again, with the whole fallback, on the full 30 s."""
        frames = self.context_frames if frames is None else frames
        search = self.settings.search
        if frames == N_FRAMES:
            encoded = self.encode(features)
            return decode_with_fallback(lambda: self.decoder_step(encoded), prompts, options, search,
                                        self.tokenizer.decode, keys, detect)
        encoded = self.encode(features[..., :frames])
        first = replace(search, temperatures=tuple(search.temperatures[:1]))
        decoded = decode_with_fallback(lambda: self.decoder_step(encoded), prompts, options, first,
                                       self.tokenizer.decode, keys, detect)
        decoded = [replace(d, audio_context=frames) for d in decoded]
        checked = search.compression_ratio_threshold is not None or search.logprob_threshold is not None
        retry = [i for i, d in enumerate(decoded)  # no fallback asked for: each window decoded once, as it is
                 if checked and (d.outcome in (KEPT_BEST, REPETITIVE) or len(d.tokens) >= options.max_new_tokens)]
        if retry:
            rows = np.asarray(retry, dtype=np.int64)
            full = self.encode(features[rows])
            again = decode_with_fallback(lambda: self.decoder_step(full), prompts[rows], options, search,
                                         self.tokenizer.decode, [keys[i] for i in retry],
                                         detect[rows] if detect is not None else None)
            for i, d in zip(retry, again):
                decoded[i] = replace(d, full_context_retry=True)
        return decoded

    def _decode_windows(self, features: np.ndarray, prompts: np.ndarray, options: DecodingOptions,
                        keys: list[int], detect: np.ndarray | None, samples: list[int]) -> list[WindowDecode]:
        """:meth:`_decode` of a batch of windows of ``samples`` each: under
        ``auto``, each group of windows of one length bucket is encoded at it."""
        if self.audio_context != AUTO_CONTEXT:
            return self._decode(features, prompts, options, keys, detect)
        buckets = [auto_context_frames(n) for n in samples]
        decoded: list[WindowDecode | None] = [None] * len(samples)
        for frames in sorted(set(buckets), reverse=True):
            rows = [i for i, bucket in enumerate(buckets) if bucket == frames]
            index = np.asarray(rows, dtype=np.int64)
            wanted = detect[index] if detect is not None else None
            for i, d in zip(rows, self._decode(features[index], prompts[index], options, [keys[i] for i in rows],
                                               wanted if wanted is not None and wanted.any() else None, frames)):
                decoded[i] = d
        return decoded

    def transcribe_features(self, features: np.ndarray) -> list[list[int]]:
        """Token ids (without prompt and <|endoftext|>; timestamp tokens
        included when timestamps are on) per window of ``features``
        (B, n_mels, 3000), under this transcriber's settings (an
        ``audio_context`` of N encodes their first N frames)."""
        features = np.asarray(features)
        if features.ndim != 3 or features.shape[1] != self.n_mels:
            raise AudioError(f"features must be (batch, {self.n_mels}, 3000), got {features.shape}",
                             "compute them with liteasr_export.core.frontend.log_mel")
        options = self.decoding_options()
        prompts = np.tile(np.asarray(options.prompt, dtype=np.int64), (features.shape[0], 1))
        return [w.tokens for w in self._decode(features, prompts, options, list(range(features.shape[0])), None)]

    def transcribe(self, audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> str:
        """Text of mono audio of any length; other sample rates are resampled."""
        return self.transcribe_many([audio], sample_rate)[0]

    def transcribe_many(self, audios: list[np.ndarray], sample_rate: int = SAMPLE_RATE) -> list[str]:
        """Texts of several recordings, their windows encoded and decoded
        ``batch_size`` at a time across recordings."""
        return [t.text for t in self.transcribe_detailed(audios, sample_rate)]

    def transcribe_detailed(self, audios: list[np.ndarray], sample_rate: int = SAMPLE_RATE) -> list[Transcript]:
        """Text, segments (with timestamps), language and a report per window
        of several recordings, decoded together (see the module's docstring)."""
        options = self.decoding_options()
        settings = self.settings
        detect = self.tokenizer.is_multilingual and settings.language == "auto"
        sot = options.sot_index
        language = options.prompt[sot + 1] if self.tokenizer.is_multilingual and sot is not None else None
        recordings = []
        for audio in audios:
            audio = np.asarray(audio)  # float64 stays wide until check_samples scaled it
            if audio.size == 0:
                raise AudioError("audio has no samples", "pass a non-empty recording")
            audio = resample(check_samples(audio), sample_rate, SAMPLE_RATE)
            recordings.append(_Recording(audio, settings.timestamps, None if detect else language, detect,
                                         self.context_frames))
        while True:
            ready = [(r, start, end) for r in recordings for start, end in r.ready()][: self.batch_size]
            if not ready:
                break
            # decoded longest first: short windows tend to finish first, and a window leaving from the end
            # of a batch frees its rows without moving any other (decoding.RowOwners.gather); a recording's
            # windows are still recorded in their order
            order = sorted(range(len(ready)), key=lambda i: ready[i][2] - ready[i][1], reverse=True)
            batch = [ready[i] for i in order]
            features = np.stack([self.features(r.audio[start:end]) for r, start, end in batch])

            prompts = np.tile(np.asarray(options.prompt, dtype=np.int64), (len(batch), 1))
            for row, (r, _, _) in enumerate(batch):
                if r.language is not None:
                    prompts[row, sot + 1] = r.language
            wanted = np.asarray([r.detect for r, _, _ in batch])
            decoded = self._decode_windows(features, prompts, options, [start for _, start, _ in batch],
                                           wanted if wanted.any() else None, [end - start for _, start, end in batch])
            results = dict(zip(order, decoded))
            for i, (r, start, end) in enumerate(ready):
                self._advance(r, start, end, results[i], options)
        return [self._transcript(r) for r in recordings]

    def detect_languages(self, audios: list[np.ndarray], sample_rate: int = SAMPLE_RATE) -> list[tuple[str, float]]:
        """The language of each recording and its probability as ``language
        auto`` detects it: from its first window, encoded as the settings'
        ``audio_context`` encodes it, in one decoder call (no transcript).
        Multilingual models only."""
        if not self.tokenizer.is_multilingual:
            raise LiteASRError(f"{self.name}: an English-only model detects no language",
                               "use a multilingual model (e.g. `model=base`)", field="language")
        options = self.decoding_options()
        codes = {v: k for k, v in self.tokenizer.language_ids.items()}
        windows = []
        for audio in audios:
            audio = resample(check_samples(np.asarray(audio)), sample_rate, SAMPLE_RATE)
            start, end = _Recording(audio, False, None, True, self.context_frames).ready()[0]
            windows.append(audio[start:end])
        auto = self.audio_context == AUTO_CONTEXT
        frames = [auto_context_frames(w.size) if auto else self.context_frames for w in windows]
        out: list[tuple[str, float]] = [("", 0.0)] * len(windows)
        for length in sorted(set(frames), reverse=True):
            rows = [i for i, f in enumerate(frames) if f == length]
            for first in range(0, len(rows), self.batch_size):
                batch = rows[first:first + self.batch_size]
                features = np.stack([self.features(windows[i]) for i in batch])
                encoded = self.encode(features if length == N_FRAMES else features[..., :length])
                prompts = np.tile(np.asarray(options.prompt, dtype=np.int64), (len(batch), 1))
                tokens, chances = detect_language(self.decoder_step(encoded), prompts, options)
                for i, token, chance in zip(batch, tokens, chances):
                    out[i] = (codes[int(token)], float(chance))
        return out

    def transcribe_each(self, audios: list[np.ndarray],
                        sample_rate: int = SAMPLE_RATE) -> list[Transcript | LiteASRError]:
        """:meth:`transcribe_detailed` of a batch that may hold a recording the
        decoder refuses: the batch is decoded together, and when that fails,
        one by one, so the others still get their transcript and the culprit
        its error (a service's or a batch job's requests)."""
        try:
            return list(self.transcribe_detailed(audios, sample_rate))
        except LiteASRError:
            pass
        out: list[Transcript | LiteASRError] = []
        for audio in audios:
            try:
                out.append(self.transcribe_detailed([audio], sample_rate)[0])
            except LiteASRError as exc:
                out.append(exc)
        return out

    def _advance(self, r: _Recording, start: int, end: int, result: WindowDecode, options: DecodingOptions) -> None:
        """Record one decoded window and move its recording on."""
        if r.detect:
            r.language, r.language_probability, r.detect = result.language_token, result.language_probability, False
        offset, window_seconds = start / SAMPLE_RATE, (end - start) / SAMPLE_RATE
        r.windows.append(WindowReport(offset, offset + window_seconds, result.temperature, result.fell_back,
                                      result.outcome, result.avg_logprob, result.compression_ratio,
                                      result.no_speech_prob, result.temperatures_tried, result.audio_context,
                                      result.full_context_retry))
        duration = r.audio.size / SAMPLE_RATE
        if not r.timestamps:
            r.next += 1
            if result.tokens:
                r.tokens += result.tokens
                r.segments.append(Segment(offset, offset + window_seconds, self.tokenizer.decode(result.tokens),
                                          result.tokens))
            return
        frames = min(r.window_frames, r.frames - r.seek)
        if result.outcome in (NO_SPEECH, REPETITIVE) or not result.tokens:
            r.seek += frames
            return
        pieces, advance = timestamp_segments(result.tokens, options.timestamp_begin, offset, frames)
        r.seek += advance
        for seg_start, seg_end, tokens in pieces:
            text = self.tokenizer.decode(tokens)
            if seg_start == seg_end or not text:
                continue  # openai-whisper clears instantaneous and empty segments
            r.tokens += tokens
            r.segments.append(Segment(min(seg_start, duration), min(seg_end, duration), text, tokens))

    def _transcript(self, r: _Recording) -> Transcript:
        codes = {v: k for k, v in self.tokenizer.language_ids.items()}
        language = codes.get(r.language) if r.language is not None else ("en" if not self.tokenizer.is_multilingual else None)
        for w in r.windows:
            w.avg_logprob, w.compression_ratio = _finite(w.avg_logprob), _finite(w.compression_ratio)
            w.no_speech_prob = _finite(w.no_speech_prob)
        return Transcript(self.tokenizer.decode(r.tokens), r.audio.size / SAMPLE_RATE, language,
                          r.language_probability, r.segments, r.windows)
