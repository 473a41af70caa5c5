"""What the decoding benchmarks share: the evaluation subsets, the models
(dense and compressed), a faster-whisper folder for the same weights, and
transcription of a set under given decoding settings."""

from __future__ import annotations

import dataclasses
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from calibration.datasets import resolve_set  # noqa: E402
from calibration.mix import balanced_sample  # noqa: E402
from liteasr_export.core.errors import DatasetError  # noqa: E402
from liteasr_export.core.evaluation import score  # noqa: E402
from liteasr_export.core.frontend import load_audio  # noqa: E402
from liteasr_export.model.sources import BUNDLED, LoadedModel, load_model  # noqa: E402

RESULTS = ROOT / "bench" / "results"
#: the sets of the issue: generated speech, one real speaker, many real speakers
SETS = ("builtin", "asterisk", "fotaq")


def eval_subset(name: str, limit: int | None, seed: int = 0) -> list:
    """The labeled evaluation part of ``name``, at most ``limit`` clips drawn
    speaker-balanced (all of ``builtin``'s 48 when ``limit`` allows)."""
    utterances = [u for u in resolve_set(name, "eval") if u.text is not None]
    return balanced_sample(utterances, limit, seed=seed) if limit and limit < len(utterances) else utterances


def available_sets(names, limit: int | None) -> dict[str, list]:
    """The sets that are installed, each as its subset; a missing one is reported and skipped."""
    out = {}
    for name in names:
        try:
            out[name] = eval_subset(name, limit)
        except DatasetError as exc:
            print(f"skipping {name}: {exc}", flush=True)
    return out


def compressed(loaded: LoadedModel, calib: str = "default") -> LoadedModel:
    """``loaded`` with the encoder compressed by liteasr-export's default
    recipe (the calibration mix, the budget policy at its default size with
    measured sensitivities), statistics and probes cached as the export caches them."""
    from liteasr_export.app.export.compression_stage import calibrate, compress_model
    from liteasr_export.app.export.pipeline import ExportOptions

    opts = ExportOptions(output=Path("unused"), calib=calib, progress=False)
    stats, _ = calibrate(loaded, opts, progress_note=lambda _: None)
    model, report = compress_model(loaded, stats, opts, lambda _: None)
    print(f"{loaded.name}: compressed to {100 * report.size_ratio:.1f} % of the encoder", flush=True)
    return dataclasses.replace(model, name=f"{loaded.name}-compressed")


def variants(model_names, compress: bool = True):
    """(label, LoadedModel) for each model, dense and (``compress``) compressed."""
    for name in model_names:
        loaded = load_model(name)
        yield f"{name} dense", loaded
        if compress:
            yield f"{name} compressed", compressed(loaded)


def ct2_folder(name: str, dest: Path) -> Path:
    """A faster-whisper / CTranslate2 folder of bundled model ``name`` (the
    same weights this project imports): config, tokenizer and one model.bin."""
    folder, bins = BUNDLED[name].files()
    dest.mkdir(parents=True, exist_ok=True)
    for file in folder.iterdir():
        if file.is_file() and not file.name.startswith("model.bin"):
            shutil.copy(file, dest / file.name)
    with open(dest / "model.bin", "wb") as out:
        for part in bins:
            with open(part, "rb") as f:
                shutil.copyfileobj(f, out)
    return dest


def transcribe_set(transcriber, utterances, audio=None) -> dict:
    """WER and time of ``transcriber.transcribe_many`` on a set (audio decoded once, outside the timing)."""
    audio = audio if audio is not None else [load_audio(u.audio) for u in utterances]
    start = time.perf_counter()
    texts = transcriber.transcribe_many(audio)
    seconds = time.perf_counter() - start
    result = score([u.audio for u in utterances], [u.text for u in utterances], texts, seconds)
    return {"wer": round(result.wer, 3), "errors": result.errors, "words": result.words, "n": result.n,
            "seconds": round(seconds, 1), "texts": texts}


def faster_whisper_model(name: str, dest: Path, compute_type: str = "int8", threads: int = 2):
    """faster-whisper's ``WhisperModel`` on bundled model ``name``'s
    CTranslate2 files: read in place when they are one ``model.bin``, else
    joined into ``dest`` first (:func:`ct2_folder`)."""
    from faster_whisper import WhisperModel

    folder, bins = BUNDLED[name].files()
    if len(bins) != 1 or bins[0].name != "model.bin":
        folder = ct2_folder(name, dest)
    return WhisperModel(str(folder), device="cpu", compute_type=compute_type, cpu_threads=threads, num_workers=1)


def faster_whisper_text(model, audio, language: str = "en", beam_size: int = 5, task: str = "transcribe") -> str:
    """One recording through faster-whisper as the benchmarks run it: the
    language given, openai-whisper's temperature fallback, no timestamps,
    no conditioning on the previous window, no VAD."""
    segments, _ = model.transcribe(audio, language=language, task=task, beam_size=beam_size,
                                   without_timestamps=True, condition_on_previous_text=False, vad_filter=False)
    return "".join(s.text for s in segments).strip()


def save_plot(fig, path: Path) -> None:
    """Write a matplotlib figure as the benchmarks do (tight, 110 dpi) and free it."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
