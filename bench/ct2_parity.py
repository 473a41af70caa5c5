"""tiny.en imported from CTranslate2 vs CTranslate2 itself: encoder max abs diff
on identical features (and of both against a float64 PyTorch run, to tell
whose rounding it is), and the share of identical greedy token sequences on
the built-in evaluation set.

    python bench/ct2_parity.py            # writes bench/results/ct2_parity.json
    python bench/ct2_parity.py --output x.json   # elsewhere (tests/model/test_ct2_parity.py)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"


def measure(model: str = "tiny.en", eval_set: str = "builtin", threads: int = 2) -> dict:
    import ctranslate2

    from calibration.datasets import resolve_set
    from liteasr_export.core.frontend import load_audio, log_mel
    from liteasr_export.model.sources import BUNDLED, load_model
    from liteasr_export.model.torch_transcriber import TorchTranscriber
    from liteasr_export.core.windowed import PLAIN_GREEDY

    folder, _ = BUNDLED[model].files()
    reference = ctranslate2.models.Whisper(str(folder), device="cpu", compute_type="float32", intra_threads=threads)
    ours = TorchTranscriber(load_model(model), settings=PLAIN_GREEDY)
    n_mels = ours.n_mels
    features = np.stack([log_mel(load_audio(u.audio), n_mels) for u in resolve_set(eval_set, purpose="eval")])
    prompt = ours.loaded.decoding.prompt
    import copy

    import torch

    exact = copy.deepcopy(ours.model).double().model.encoder  # float64 run, to tell whose rounding it is
    clip_diffs, ours_vs_exact, ct2_vs_exact, same, mismatched = [], 0.0, 0.0, 0, []
    for start in range(0, len(features), 8):
        batch = features[start : start + 8]
        view = ctranslate2.StorageView.from_array(batch)
        theirs_enc = np.array(reference.encode(view, to_cpu=True))
        mine_enc = ours.encode(batch).numpy()
        with torch.inference_mode():
            exact_enc = exact(torch.from_numpy(batch).double()).last_hidden_state.numpy()
        clip_diffs += np.abs(mine_enc - theirs_enc).reshape(len(batch), -1).max(axis=1).tolist()
        ours_vs_exact = max(ours_vs_exact, float(np.abs(mine_enc - exact_enc).max()))
        ct2_vs_exact = max(ct2_vs_exact, float(np.abs(theirs_enc - exact_enc).max()))
        results = reference.generate(view, [prompt] * len(batch), beam_size=1, max_length=448,
                                     suppress_blank=True, suppress_tokens=[-1])
        for offset, (theirs, mine) in enumerate(zip(results, ours.transcribe_features(batch))):
            if list(theirs.sequences_ids[0]) == mine:
                same += 1
            else:
                mismatched.append(start + offset)
    return {"model": model, "eval_set": eval_set, "n": len(features), "identical_greedy": same,
            "identical_share": same / len(features), "mismatched": mismatched,
            "encoder_max_abs_diff": max(clip_diffs),
            "encoder_median_clip_max_abs_diff": float(np.median(clip_diffs)),
            "clips_within_2e-3": int(sum(d <= 2e-3 for d in clip_diffs)),
            "ours_fp32_vs_fp64_max_abs_diff": ours_vs_exact,
            "ctranslate2_fp32_vs_fp64_max_abs_diff": ct2_vs_exact}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=RESULTS / "ct2_parity.json", help="where to write the result")
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    result = measure()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
