#!/usr/bin/env python3
"""Scale-out figures on one machine, local Ray: liteasr-serve under load,
with dynamic batching and without, a replica killed during the load, and a
Ray Data job over the Asterisk prompts killed halfway and resumed.

    python bench/serve_load.py --artifacts out/tiny.en

1. ``batching``: 64 requests (``--requests``) at concurrency 8 with httpx
   against ``liteasr-serve --replicas 1 --replica-cpus 2`` (two ONNX Runtime
   threads), ``--max-batch-size 8`` against ``--max-batch-size 1`` (the same
   service otherwise), alternating ``--repeats`` times; throughput, p50 /
   p95 latency, mean batch, failures. Once with liteasr-transcribe's
   decoding (beam 5, timestamps), once greedy without timestamps
   (``--replicas 2``: two replicas of one CPU each instead).
2. ``replica_kill``: two replicas of one CPU each; once a quarter of the
   requests are answered, one replica's process is killed (SIGKILL). A
   request answered with a 5xx is retried (up to 5 times); counts of
   successes, clean 5xx, retries that then completed, and other failures,
   and whether Ray restarted the replica (a new process answers /health).
3. ``ray_data``: ``liteasr-transcribe --ray asterisk-all --no-timestamps
   --language en`` (liteasr-eval's decoding), its process group killed
   (SIGKILL) once half the files are written, then rerun; the records, the
   files redone, and the WER against ``liteasr-eval --eval asterisk-all``
   on the same artifacts.

Clips: the first ``--requests`` prompts of ``asterisk-eval`` by name (real
telephone speech), or ``builtin-eval`` when Asterisk is not installed.
Writes bench/results/serve_load.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.decoding_common import RESULTS  # noqa: E402

ENV = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
       "RAY_USAGE_STATS_ENABLED": "0"}
RETRIES = 5
LOGS = Path("/tmp/liteasr-serve-load")


def _cli(main: str, args: list[str]) -> list[str]:
    """The command line of a console script, run with this Python and this checkout."""
    return [sys.executable, "-c", f"import sys; from liteasr_export.app.cli import {main} as m; sys.exit(m(sys.argv[1:]))",
            *args]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


class Service:
    """``liteasr-serve`` in its own process group, stopped with Ctrl-C (SIGINT)."""

    def __init__(self, artifacts: str, name: str, *flags: str) -> None:
        self.port = _free_port()
        self.args = ["--artifacts", artifacts, "--port", str(self.port), "--num-cpus", str(os.cpu_count()), *flags]
        self.url = f"http://127.0.0.1:{self.port}"
        LOGS.mkdir(parents=True, exist_ok=True)
        self.log = open(LOGS / f"{name}.log", "w")
        self.proc = subprocess.Popen(_cli("serve_main", self.args), env=ENV, stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)

    @property
    def command(self) -> str:
        return "liteasr-serve " + " ".join(a for a in self.args if a not in ("--port", str(self.port)))

    def wait_ready(self, timeout: float = 300) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"liteasr-serve exited with {self.proc.returncode}: see {self.log.name}")
            try:
                if httpx.get(f"{self.url}/health", timeout=5).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(1)
        raise TimeoutError(f"liteasr-serve did not answer in {timeout} s: see {self.log.name}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()


async def _load(url: str, clips: list[tuple[str, bytes]], concurrency: int, on_done=None) -> list[dict]:
    """Send every clip once, ``concurrency`` at a time; a 5xx or a broken
    connection is retried. One record per request."""
    gate = asyncio.Semaphore(concurrency)
    records: list[dict] = []
    async with httpx.AsyncClient(base_url=url, timeout=300) as client:
        async def one(index: int, name: str, data: bytes) -> None:
            async with gate:
                record = {"index": index, "statuses": [], "errors": []}
                start = time.perf_counter()
                for _ in range(1 + RETRIES):
                    try:
                        response = await client.post("/v1/audio/transcriptions", files={"file": (name, data)},
                                                     data={"model": "whisper-1"})
                    except httpx.HTTPError as exc:
                        record["errors"].append(f"{type(exc).__name__}: {exc}")
                        await asyncio.sleep(1)
                        continue
                    record["statuses"].append(response.status_code)
                    if response.status_code < 500:
                        record["batch"] = int(response.headers.get("x-liteasr-batch-size", 0))
                        record["text"] = response.json().get("text") if response.status_code == 200 else None
                        break
                    try:
                        record["clean_5xx"] = record.get("clean_5xx", True) and "error" in response.json()
                    except ValueError:
                        record["clean_5xx"] = False
                    await asyncio.sleep(1)
                record["latency_s"] = time.perf_counter() - start
                records.append(record)
                if on_done is not None:
                    on_done(len(records))

        await asyncio.gather(*(one(i, name, data) for i, (name, data) in enumerate(clips)))
    return sorted(records, key=lambda r: r["index"])


def _summary(records: list[dict], seconds: float) -> dict:
    ok = [r for r in records if r["statuses"][-1:] == [200]]
    first_try = [r for r in ok if len(r["statuses"]) == 1 and not r["errors"]]
    latencies = [r["latency_s"] for r in records]
    return {
        "requests": len(records), "seconds": round(seconds, 2), "requests_per_s": round(len(records) / seconds, 3),
        "p50_latency_s": round(_percentile(latencies, 0.5), 3), "p95_latency_s": round(_percentile(latencies, 0.95), 3),
        "succeeded": len(ok), "succeeded_first_try": len(first_try),
        "answered_5xx_then_retried_ok": sum(1 for r in ok if any(s >= 500 for s in r["statuses"])),
        "clean_5xx_responses": sum(1 for r in records for s in r["statuses"] if s >= 500 and r.get("clean_5xx")),
        "unclean_5xx_responses": sum(1 for r in records for s in r["statuses"] if s >= 500 and not r.get("clean_5xx")),
        "connection_errors": sum(len(r["errors"]) for r in records),
        "failed": len(records) - len(ok),
        "mean_batch": round(statistics.mean(r.get("batch", 0) for r in ok), 2) if ok else None,
    }


def _clips(count: int) -> tuple[str, list[tuple[str, bytes]]]:
    from calibration.datasets import asterisk_available, resolve_set

    name = "asterisk-eval" if asterisk_available() else "builtin-eval"
    utterances = sorted(resolve_set(name, purpose="eval"), key=lambda u: u.id)
    chosen = [utterances[i % len(utterances)] for i in range(count)]
    return name, [(Path(u.audio).name, Path(u.audio).read_bytes()) for u in chosen]


#: decoding settings the batching scenario is measured with (liteasr-serve flags)
DECODINGS = {
    "default": [],  # liteasr-transcribe's: beam 5, fallback, timestamps
    "greedy-no-timestamps": ["--beam-size", "1", "--no-timestamps"],
}


def _layout(args) -> list[str]:
    """liteasr-serve's replica flags of the batching scenario."""
    cpus = args.replica_cpus or os.cpu_count() // args.replicas
    return ["--replicas", str(args.replicas), "--replica-cpus", str(cpus)]


def batching(args, clips, decoding: str) -> dict:
    runs: dict[int, list[dict]] = {b: [] for b in (args.max_batch, 1)}
    load = [round(x, 2) for x in os.getloadavg()]  # the machine is shared: how quiet it was
    commands = {}
    texts: dict[int, list] = {}
    for repeat in range(args.repeats):
        for batch in runs:  # alternate, so drifts in the machine's load hit both
            service = Service(args.artifacts, f"{decoding}-batch{batch}-{repeat}", *_layout(args),
                              "--max-batch-size", str(batch), *DECODINGS[decoding])
            commands[batch] = service.command
            try:
                service.wait_ready()
                asyncio.run(_load(service.url, clips[:args.concurrency], args.concurrency))  # warm-up
                start = time.perf_counter()
                records = asyncio.run(_load(service.url, clips, args.concurrency))
                summary = _summary(records, time.perf_counter() - start)
            finally:
                service.stop()
            texts[batch] = [r.get("text") for r in records]
            runs[batch].append(summary)
            print(f"{decoding}, max batch {batch}: {summary['requests_per_s']:.2f} req/s, p50 {summary['p50_latency_s']:.2f} s, "
                  f"p95 {summary['p95_latency_s']:.2f} s, mean batch {summary['mean_batch']}, "
                  f"failed {summary['failed']}", flush=True)
    best = {b: max(r["requests_per_s"] for r in rs) for b, rs in runs.items()}
    median = {b: statistics.median(r["requests_per_s"] for r in rs) for b, rs in runs.items()}
    return {"commands": commands, "load_average_at_start": load, "runs": {str(b): rs for b, rs in runs.items()},
            "median_requests_per_s": {str(b): round(v, 3) for b, v in median.items()},
            "throughput_ratio_median": round(median[args.max_batch] / median[1], 3),
            "throughput_ratio_best": round(best[args.max_batch] / best[1], 3),
            "same_texts": texts[args.max_batch] == texts[1],
            "failed": sum(r["failed"] for rs in runs.values() for r in rs)}


def _replica_pids(url: str, want: int, timeout: float) -> set[int]:
    """Process ids answering /health until ``want`` distinct ones were seen."""
    seen: set[int] = set()
    deadline = time.time() + timeout
    while len(seen) < want and time.time() < deadline:
        try:
            seen.add(httpx.get(f"{url}/health", timeout=10).json()["pid"])
        except (httpx.HTTPError, KeyError, ValueError):
            time.sleep(0.5)
    return seen


def replica_kill(args, clips) -> dict:
    service = Service(args.artifacts, "replica-kill", "--replicas", "2", "--replica-cpus", "1",
                      "--max-batch-size", str(args.max_batch))
    killed: dict = {}
    try:
        service.wait_ready()
        before = _replica_pids(service.url, 2, 120)
        asyncio.run(_load(service.url, clips[:args.concurrency], args.concurrency))  # warm-up

        def on_done(count: int) -> None:
            if not killed and count >= len(clips) // 4:
                victim = min(before)
                os.kill(victim, signal.SIGKILL)
                killed.update(pid=victim, after_requests=count, at=time.perf_counter())

        start = time.perf_counter()
        records = asyncio.run(_load(service.url, clips, args.concurrency, on_done))
        summary = _summary(records, time.perf_counter() - start)
        deadline = time.time() + 180
        after: set[int] = set()
        while time.time() < deadline:
            after = _replica_pids(service.url, 2, 30)
            if len(after) == 2 and killed.get("pid") not in after:
                break
            time.sleep(2)
        restarted_s = round(time.perf_counter() - killed["at"], 1) if killed else None
    finally:
        service.stop()
    result = {"command": service.command, "replica_pids_before": sorted(before), "killed_pid": killed.get("pid"),
              "killed_after_requests": killed.get("after_requests"), "replica_pids_after": sorted(after),
              "replica_restarted": len(after) == 2 and killed.get("pid") not in after,
              "restarted_within_s": restarted_s, **summary}
    print(f"replica kill: {summary['succeeded']}/{summary['requests']} succeeded ({summary['succeeded_first_try']} "
          f"first try, {summary['answered_5xx_then_retried_ok']} after a 5xx and a retry), clean 5xx "
          f"{summary['clean_5xx_responses']}, unclean {summary['unclean_5xx_responses']}, connection errors "
          f"{summary['connection_errors']}, failed {summary['failed']}, replica restarted: "
          f"{result['replica_restarted']}", flush=True)
    return result


def _lines(path: Path) -> list[dict]:
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            pass
    return out


def ray_data(args) -> dict:
    from calibration.datasets import resolve_set

    files = len(resolve_set(args.ray_set, purpose="eval"))
    output = LOGS / f"{args.ray_set}.jsonl"
    output.unlink(missing_ok=True)
    flags = ["--ray", args.ray_set, "--output", str(output), "--artifacts", args.artifacts, "--no-timestamps",
             "--language", "en", "--threads", "1", "--batch-size", "8"]
    command = "liteasr-transcribe " + " ".join(flags).replace(str(output), "results.jsonl")
    log = open(LOGS / "ray-data.log", "w")
    first = subprocess.Popen(_cli("transcribe_main", flags), env=ENV, stdout=log, stderr=subprocess.STDOUT,
                             start_new_session=True)
    start = time.perf_counter()
    while first.poll() is None:
        written = len(_lines(output)) if output.exists() else 0
        if written >= files // 2:
            os.killpg(first.pid, signal.SIGKILL)  # the driver and the local Ray it started
            break
        time.sleep(0.5)
    first.wait()
    killed_after_s = time.perf_counter() - start
    time.sleep(5)
    raw = output.read_text()
    prefix = _lines(output)
    second_start = time.perf_counter()
    rerun = subprocess.run(_cli("transcribe_main", flags), env=ENV, stdout=subprocess.PIPE, stderr=log, text=True,
                           timeout=3600)
    second_s = time.perf_counter() - second_start
    records = _lines(output)
    total = len(records)
    audio = [r["audio"] for r in records]
    eval_start = time.perf_counter()
    evaluated = subprocess.run(_cli("eval_main", ["--engine", "onnx", "--artifacts", args.artifacts, "--eval",
                                                  args.ray_set, "--threads", str(os.cpu_count()), "--json"]),
                               env=ENV, stdout=subprocess.PIPE, stderr=log, text=True, timeout=3600)
    eval_s = time.perf_counter() - eval_start
    log.close()
    evaluation = json.loads(evaluated.stdout)
    hypotheses = {i["audio"]: i["hypothesis"] for i in evaluation["items"]}
    from liteasr_export.core.evaluation import score

    ok = [r for r in records if r.get("error") is None]
    wer = score([r["audio"] for r in ok], [r["reference"] for r in ok], [r["text"] for r in ok]).wer
    result = {
        "command": command, "eval_command": f"liteasr-eval --engine onnx --artifacts OUT --eval {args.ray_set} --json", "files": files,
        "first_run_killed_after_s": round(killed_after_s, 1), "first_run_exit": first.returncode,
        "records_before_kill": len(prefix), "cut_off_line_left": bool(raw) and not raw.endswith("\n"),
        "rerun_exit": rerun.returncode, "rerun_summary": rerun.stdout.strip(), "rerun_s": round(second_s, 1),
        "records": total, "distinct_files": len(set(audio)), "failed_records": len(records) - len(ok),
        "redone_files": total - len(set(audio)),
        "wer_ray_data": round(wer, 4), "wer_liteasr_eval": round(evaluation["wer"], 4),
        "eval_utterances": evaluation["n"], "eval_s": round(eval_s, 1),
        "texts_differing_from_eval": sum(1 for r in ok if hypotheses.get(r["audio"]) != r["text"]),
    }
    print(f"ray data: {len(prefix)} records before the kill, rerun: {rerun.stdout.strip()}; {total} records, "
          f"{len(set(audio))} files, WER {wer:.2f}% (liteasr-eval {evaluation['wer']:.2f}%)", flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--artifacts", required=True, help="folder written by liteasr-export")
    parser.add_argument("--requests", type=int, default=64)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--max-batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--ray-set", default="asterisk-all", help="speech set of the Ray Data job (killed at half)")
    parser.add_argument("--replicas", type=int, default=1, help="replicas in the batching scenario")
    parser.add_argument("--replica-cpus", type=int, default=None,
                        help="CPUs (ONNX Runtime threads) per replica in the batching scenario (default: all / replicas)")
    parser.add_argument("--decodings", choices=tuple(DECODINGS), nargs="+", default=list(DECODINGS),
                        help="decoding settings of the batching scenario")
    parser.add_argument("--only", choices=("batching", "replica_kill", "ray_data"), nargs="+",
                        default=["batching", "replica_kill", "ray_data"])
    parser.add_argument("--output", type=Path, default=RESULTS / "serve_load.json")
    args = parser.parse_args()
    args.artifacts = str(Path(args.artifacts).resolve())
    manifest = json.loads((Path(args.artifacts) / "manifest.json").read_text())
    clip_set, clips = _clips(args.requests)
    out = json.loads(args.output.read_text()) if args.output.exists() else {}
    out.update({"command": " ".join(sys.argv), "cpus": os.cpu_count(), "artifacts": {
        "model": manifest.get("name"), "encoder_size_ratio": (manifest.get("compression") or {}).get("size_ratio"),
        "degraded": manifest.get("degraded", False)}, "clips": clip_set, "requests": args.requests,
        "concurrency": args.concurrency})
    args.output.parent.mkdir(parents=True, exist_ok=True)
    for scenario in args.only:
        if scenario != "batching":  # the machine is shared: how quiet it was (batching: per decoding)
            out.setdefault("load_average_at_start", {})[scenario] = [round(x, 2) for x in os.getloadavg()]
        if scenario == "batching":
            out.setdefault("batching", {})
            for decoding in args.decodings:
                key = decoding if args.replicas == 1 else f"{decoding}, {args.replicas} replicas"
                out["batching"][key] = {"bench_command": " ".join(sys.argv), **batching(args, clips, decoding)}
                args.output.write_text(json.dumps(out, indent=2) + "\n")
            continue
        result = replica_kill(args, clips) if scenario == "replica_kill" else ray_data(args)
        out[scenario] = {"bench_command": " ".join(sys.argv), **result}  # the file gathers several runs
        args.output.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
