"""Corpus-scale transcription on Ray Data (``liteasr-transcribe --ray``).

The inputs (audio files, folders, ``.jsonl`` manifests, named speech sets)
become a dataset of paths; an actor pool, each actor holding one ONNX
Runtime transcriber, maps batches of paths to JSON records, and the driver
appends each record as one line of the output as it arrives (flushed and
synced per batch). So a job that is killed leaves a valid prefix of lines,
at worst followed by one cut-off line, which the next run moves aside to
``OUTPUT.partial`` (nothing in the file is ever deleted); a last line that is
a whole record without its newline is kept, and the newline added.

Rerunning the same command resumes: files already recorded in the output are
skipped (``retry_failed``: files recorded with an error are tried again; the
last record of a file is the one that counts). A file that cannot be read or
decoded becomes a record with ``"error"`` and the job goes on. A file
whose manifest line states a language is decoded in it unless the settings
name one (:func:`decoding_language`).
"""

from __future__ import annotations

import json
import math
import os
import warnings
from contextlib import closing
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from calibration.datasets import Utterance, audio_folder, load_manifest, resolve_set

from liteasr_export.core.errors import AudioError, LiteASRError, UserNotice
from liteasr_export.core.evaluation import score
from liteasr_export.core.frontend import load_audio
from liteasr_export.core.interrupts import pause_point
from liteasr_export.core.manifest import load_manifest as load_artifacts
from liteasr_export.app.ray_jobs.cluster import cluster_cpus, quiet_data, ray_session
from liteasr_export.app.runners import open_runner
from liteasr_export.core.windowed import Transcript, TranscribeOptions


def job_inputs(inputs: list[str]) -> list[Utterance]:
    """Utterances of the inputs, in order, each file once: an existing file is
    one recording (``.jsonl``: a manifest), a folder every audio file in it,
    anything else a speech set's name (``asterisk-all``, ``builtin-eval``)."""
    out: dict[str, Utterance] = {}
    for spec in inputs:
        path = Path(spec)
        if path.is_file() and path.suffix == ".jsonl":
            found = load_manifest(path, check_audio=False)  # a missing file: an error record
        elif path.is_dir():
            found = audio_folder(path)
        elif path.exists():  # a FIFO or device too: its record says what it is
            found = [Utterance(str(path.resolve()), None, path.stem)]
        else:
            found = resolve_set(spec, purpose="eval")
        for u in found:
            out.setdefault(u.audio, u)
    return list(out.values())


def read_results(path: str | os.PathLike[str]) -> dict[str, dict[str, Any]]:
    """The last record of each file in a results file; lines that are not
    whole JSON records (a job killed mid-line) are ignored."""
    records: dict[str, dict[str, Any]] = {}
    try:
        lines = Path(path).read_text(encoding="utf-8", errors="replace").splitlines()
    except FileNotFoundError:
        return records
    for line in lines:
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict) and isinstance(record.get("audio"), str):
            records[record["audio"]] = record
    return records


def repair_last_line(path: Path) -> str | None:
    """Make ``path`` end with a newline before records are appended to it,
    without losing a byte of it: a last line without its newline that is a
    whole JSON record (written by hand or by another tool) gets the newline;
    one that is not (a job killed mid-line) is moved to ``PATH.partial``
    (appended there, so earlier ones are kept) and cut from ``path``.
    Returns what was done, for the user, or None when nothing was."""
    if not path.is_file() or path.stat().st_size == 0:
        return None
    with open(path, "rb+") as f:
        size = f.seek(0, os.SEEK_END)
        f.seek(max(0, size - 1))
        if f.read(1) == b"\n":
            return None
        start = _last_line_start(f, size)
        f.seek(start)
        tail = f.read()
        if _is_record(tail):
            f.write(b"\n")
            f.flush()
            os.fsync(f.fileno())
            return None
        aside = path.with_name(path.name + ".partial")
        with open(aside, "ab") as kept:
            kept.write(tail + b"\n")
            kept.flush()
            os.fsync(kept.fileno())
        f.truncate(start)
        f.flush()
        os.fsync(f.fileno())
    return (f"the last line of {path} was cut off (a job killed mid-line?): moved to {aside} "
            f"({len(tail)} bytes); its file is transcribed again")


def _last_line_start(f, size: int, block: int = 1 << 16) -> int:
    """Offset just after the last newline of an open binary file (0 if none),
    read backwards in blocks: a results file can be large."""
    end = size
    while end > 0:
        start = max(0, end - block)
        f.seek(start)
        found = f.read(end - start).rfind(b"\n")
        if found >= 0:
            return start + found + 1
        end = start
    return 0


def _is_record(line: bytes) -> bool:
    """Whether a line is a whole results record (a JSON object with "audio")."""
    try:
        record = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return False
    return isinstance(record, dict) and isinstance(record.get("audio"), str)


def _record(utterance: dict[str, Any], transcript: Transcript | None = None, error: str | None = None) -> str:
    record: dict[str, Any] = {"audio": utterance["audio"], "id": utterance["id"]}
    if utterance["reference"]:
        record["reference"] = utterance["reference"]
    if transcript is not None:
        record.update(text=transcript.text, language=transcript.language, duration=transcript.duration,
                      segments=[{"start": s.start, "end": s.end, "text": s.text} for s in transcript.segments])
    record["error"] = error
    return json.dumps(record, ensure_ascii=False)


def decoding_language(settings: TranscribeOptions, stated: str | None) -> str | None:
    """The language a file is decoded in: the one its manifest line states
    (``stated``) unless the settings name one (not ``auto``, which detects
    what is not known)."""
    return stated if stated and settings.language in (None, "auto") else settings.language


class _TranscribeActor:
    """Ray Data actor: an ONNX Runtime transcriber; a batch of paths -> records."""

    def __init__(self, artifacts: str, settings: TranscribeOptions, threads: int, batch_size: int,
                 provider: str | None, ort_cache: str | None, verify: bool) -> None:
        self.settings = settings
        self.transcriber = open_runner("onnx", artifacts=artifacts, threads=threads, providers=provider,
                                       ort_cache=ort_cache, verify=verify, batch_size=batch_size, settings=settings)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        items = [{"audio": str(a), "id": str(i), "reference": str(r), "language": str(lang)}
                 for a, i, r, lang in zip(batch["audio"], batch["id"], batch["reference"], batch["language"])]
        records: list[str | None] = [None] * len(items)
        groups: dict[str | None, list[tuple[int, np.ndarray]]] = {}  # by the language to decode in
        for row, item in enumerate(items):
            try:
                audio = load_audio(item["audio"])
            except AudioError as exc:
                records[row] = _record(item, error=str(exc))
                continue
            groups.setdefault(decoding_language(self.settings, item["language"]), []).append((row, audio))
        for language, loaded in groups.items():
            try:  # a language the model does not speak fails its files, not the job
                self.transcriber.configure(replace(self.settings, language=language))
            except LiteASRError as exc:
                for row, _ in loaded:
                    records[row] = _record(items[row], error=str(exc))
                continue
            for (row, _), result in zip(loaded, self.transcriber.transcribe_each([audio for _, audio in loaded])):
                records[row] = (_record(items[row], error=str(result)) if isinstance(result, LiteASRError)
                                else _record(items[row], result))
        return {"record": np.array(records, dtype=object)}


@dataclass
class JobSummary:
    """What a run did: files in the inputs, skipped as already recorded, and
    written now (ok / failed); ``wer`` over every file of the output with a
    reference (None without references)."""

    output: str
    files: int
    skipped: int
    transcribed: int
    failed: int
    failed_total: int  # files whose last record in the output is an error
    wer: float | None = None
    scored: int = 0


def transcribe_job(inputs: list[str], output: str | os.PathLike[str], artifacts: str | os.PathLike[str],
                   settings: TranscribeOptions, address: str | None = None, batch_size: int = 8,
                   actors: int | None = None, threads: int = 1, provider: str | None = None,
                   ort_cache: str | None = None, verify: bool = True, retry_failed: bool = False,
                   progress: bool = True) -> JobSummary:
    """Transcribe every input file into ``output`` (JSON lines) on Ray Data,
    ``actors`` transcribers of ``threads`` ONNX Runtime threads each
    (default: as many as the cluster's CPUs allow), ``batch_size`` files per
    call; resumes a previous run (see the module's docstring)."""
    utterances = job_inputs(inputs)
    output = Path(output)
    if output.is_dir():
        raise LiteASRError(f"`output` {output} is a folder", "name a results file, e.g. `output=results.jsonl`",
                           field="output")
    output.parent.mkdir(parents=True, exist_ok=True)
    manifest = load_artifacts(artifacts)
    if verify:
        manifest.verify_all()  # fail here, not in every actor
    done = read_results(output)
    pending = [u for u in utterances
               if u.audio not in done or (retry_failed and done[u.audio].get("error") is not None)]
    transcribed = failed = 0
    if pending:
        note = repair_last_line(output)
        if note:
            warnings.warn(note, UserNotice, stacklevel=2)
        rows = [{"audio": u.audio, "id": u.id, "reference": u.text or "", "language": u.language or ""}
                for u in pending]
        with ray_session(address) as ray:
            quiet_data(ray)
            pool = actors or max(1, cluster_cpus(ray) // threads)
            pool = min(pool, math.ceil(len(rows) / batch_size))
            dataset = ray.data.from_items(rows, override_num_blocks=math.ceil(len(rows) / batch_size)).map_batches(
                _TranscribeActor, batch_size=batch_size, num_cpus=threads,
                compute=ray.data.ActorPoolStrategy(size=pool),
                fn_constructor_kwargs=dict(artifacts=str(artifacts), settings=settings, threads=threads,
                                           batch_size=batch_size, provider=provider, ort_cache=ort_cache,
                                           verify=verify))  # cheap: the driver's verify_all() stamped the files
            # the iterator is closed before Ray shuts down, also when a signal unwinds the loop: closing it
            # stops Ray Data's executor, which would otherwise run after ray.shutdown() (when the traceback
            # is dropped) and make Ray's core worker end the process with exit status 1. No prefetching
            # threads for the same reason (they outlive the closed iterator); the actors do the work, the
            # driver only writes lines, so prefetching gained nothing here
            batches = iter(dataset.iter_batches(batch_size=None, batch_format="numpy", prefetch_batches=0))
            with closing(batches), open(output, "a", encoding="utf-8") as sink, \
                    tqdm(total=len(rows), desc="transcribing (ray)", unit="file", disable=not progress,
                         mininterval=1.0) as bar:
                for batch in batches:
                    lines = [str(line) for line in batch["record"]]
                    sink.write("".join(line + "\n" for line in lines))
                    sink.flush()
                    os.fsync(sink.fileno())
                    failed += sum(json.loads(line)["error"] is not None for line in lines)
                    transcribed += len(lines)
                    bar.update(len(lines))
                    pause_point("ray-batch")  # a test stops the job here, with Ray running
    records = read_results(output)
    summary = JobSummary(str(output), len(utterances), len(utterances) - len(pending), transcribed - failed, failed,
                         sum(records[u.audio].get("error") is not None for u in utterances if u.audio in records))
    scored = [u for u in utterances
              if u.audio in records and records[u.audio].get("error") is None and records[u.audio].get("reference")]
    if scored:  # each file in its stated language's normalizer
        result = score([u.audio for u in scored], [records[u.audio]["reference"] for u in scored],
                       [records[u.audio]["text"] for u in scored], languages=[u.language for u in scored])
        summary.wer, summary.scored = result.wer, result.n
    return summary
