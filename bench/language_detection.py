#!/usr/bin/env python3
"""Language detection with the bundled multilingual base against
faster-whisper's on the same weights, on speech made with espeak-ng voices.

    python bench/language_detection.py

Four sentences in each of six languages (German, French, Spanish, Italian,
Portuguese, Dutch), spoken by espeak-ng (Debian ``espeak-ng``); ours is
``--language auto`` (the language tokens' probabilities at the start of the
first window), theirs ``WhisperModel.detect_language``. Writes
bench/results/language_detection.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.decoding_common import RESULTS, ct2_folder  # noqa: E402
from liteasr_export.core.frontend import load_audio  # noqa: E402
from liteasr_export.core.windowed import TranscribeOptions  # noqa: E402

SENTENCES = {
    "de": ["Der Zug nach Berlin fährt heute eine halbe Stunde später ab.",
           "Kannst du mir bitte sagen, wo die nächste Apotheke ist?",
           "Wir haben am Wochenende einen langen Spaziergang im Wald gemacht.",
           "Das Wetter soll morgen sonnig und ziemlich warm werden."],
    "fr": ["Le train pour Paris partira avec une demi-heure de retard.",
           "Pouvez-vous me dire où se trouve la pharmacie la plus proche?",
           "Nous avons fait une longue promenade dans la forêt ce week-end.",
           "Demain, il fera beau et plutôt chaud dans tout le pays."],
    "es": ["El tren a Madrid saldrá hoy con media hora de retraso.",
           "¿Puede decirme dónde está la farmacia más cercana, por favor?",
           "Este fin de semana dimos un largo paseo por el bosque.",
           "Mañana hará sol y bastante calor en todo el país."],
    "it": ["Il treno per Roma partirà oggi con mezz'ora di ritardo.",
           "Mi può dire dov'è la farmacia più vicina, per favore?",
           "Questo fine settimana abbiamo fatto una lunga passeggiata nel bosco.",
           "Domani ci sarà il sole e farà piuttosto caldo."],
    "pt": ["O comboio para Lisboa vai partir hoje com meia hora de atraso.",
           "Pode dizer-me onde fica a farmácia mais próxima, por favor?",
           "Neste fim de semana fizemos um longo passeio pela floresta.",
           "Amanhã vai estar sol e bastante calor em todo o país."],
    "nl": ["De trein naar Amsterdam vertrekt vandaag een half uur later.",
           "Kunt u mij vertellen waar de dichtstbijzijnde apotheek is?",
           "We hebben dit weekend een lange wandeling in het bos gemaakt.",
           "Morgen wordt het zonnig en vrij warm in het hele land."],
}


def speak(language: str, text: str, path: Path) -> Path:
    subprocess.run(["espeak-ng", "-v", language, "-s", "150", "-w", str(path), text], check=True,
                   capture_output=True)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="base")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--output", type=Path, default=RESULTS / "language_detection.json")
    args = parser.parse_args()
    if shutil.which("espeak-ng") is None:
        raise SystemExit("espeak-ng is not installed: apt-get install espeak-ng")

    import torch
    from faster_whisper import WhisperModel

    from liteasr_export.model.sources import load_model
    from liteasr_export.model.torch_transcriber import TorchTranscriber

    torch.set_num_threads(args.threads)
    ours = TorchTranscriber(load_model(args.model), settings=TranscribeOptions(language="auto"))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        items = [(lang, text, load_audio(speak(lang, text, tmp / f"{lang}{i}.wav")))
                 for lang, texts in SENTENCES.items() for i, text in enumerate(texts)]
        transcripts = ours.transcribe_detailed([a for _, _, a in items])
        # --task translate on the first sentence of each language: English text expected
        firsts = [i for i, (lang, _, _) in enumerate(items) if items[i - 1][0] != lang or i == 0]
        ours.configure(TranscribeOptions(language="auto", task="translate"))
        translations = ours.transcribe_many([items[i][2] for i in firsts])
        fw = WhisperModel(str(ct2_folder(args.model, tmp / "ct2")), device="cpu", compute_type="float32",
                          cpu_threads=args.threads)
        rows = []
        for (lang, text, audio), t in zip(items, transcripts):
            theirs, their_p, _ = fw.detect_language(audio)
            rows.append({"truth": lang, "ours": t.language, "ours_p": round(t.language_probability, 4),
                         "faster_whisper": theirs, "faster_whisper_p": round(float(their_p), 4),
                         "agree": t.language == theirs, "text": t.text, "spoken": text})
            print(f"{lang}: ours {t.language} ({t.language_probability:.3f}), faster-whisper {theirs} "
                  f"({their_p:.3f}) | {t.text[:60]}", flush=True)
    out = {"command": " ".join(sys.argv), "model": args.model, "clips": len(rows),
           "languages": sorted(SENTENCES), "agree": sum(r["agree"] for r in rows),
           "ours_correct": sum(r["ours"] == r["truth"] for r in rows),
           "faster_whisper_correct": sum(r["faster_whisper"] == r["truth"] for r in rows),
           "max_probability_difference": round(max(abs(r["ours_p"] - r["faster_whisper_p"]) for r in rows
                                                   if r["agree"]), 4),
           "translations": [{"language": items[i][0], "spoken": items[i][1], "translated": text}
                            for i, text in zip(firsts, translations)],
           "rows": rows}
    print(f"agreement {out['agree']}/{out['clips']} clips in {len(SENTENCES)} languages; correct: ours "
          f"{out['ours_correct']}, faster-whisper {out['faster_whisper_correct']}; largest probability "
          f"difference where they agree {out['max_probability_difference']}")
    for t in out["translations"]:
        print(f"translate {t['language']}: {t['translated']}")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(out, indent=2, ensure_ascii=False) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
