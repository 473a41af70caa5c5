"""The options are typed and declared once (liteasr_export.app.export.options,
liteasr_export.core.choices), and errors name what the library was given:
a parameter or options field (``eval_limit``), which the command lines
write as their flags (``--eval-limit``)."""

from __future__ import annotations

import argparse
import ast
import json
from dataclasses import asdict, fields
from pathlib import Path

import pytest

from liteasr_export.app.cli import eval_parser, export_parser, field_flags, flag_namer, serve_parser, transcribe_parser
from liteasr_export.app.export.options import ExportOptions, Policy, Precision, Preset, field_types
from liteasr_export.core.choices import Choice, option_of
from liteasr_export.core.errors import NAMED, LiteASRError

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("liteasr_export", "calibration", "exporters", "engines")
#: liteasr-export flags that set no ExportOptions field
CLI_ONLY = {"debug", "help"}
#: parameters errors name that no command line passes under that name, and why
LIBRARY_ONLY = {
    "max_samples": "collect_statistics' cap: liteasr-export draws --calib-samples per source through resolve_mix",
    "utterances": "collect_statistics' input: liteasr-export calibrates on windows of its --calib mix",
    "path": "ProfilePolicy.from_file's file: make_policy passes --ranks, checked first by name",
    "settings": "TrtTranscriber.configure's TranscribeOptions: its hint names beam_size/best_of",
    "opt_batch": "ProfileOptions' own field: the CLI sets max_batch only",
    "min_mel_frames": "ProfileOptions' own field (the engines' shortest audio context): the CLI sets max_batch only",
    "opt_mel_frames": "ProfileOptions' own field (the audio context engines are tuned for): no flag yet",
}


def _dests(parser: argparse.ArgumentParser) -> set[str]:
    return {a.dest for a in parser._actions if a.option_strings}


def test_every_choice_is_an_enum_of_the_same_strings():
    from liteasr_export.core.graphs import PRECISIONS
    from liteasr_export.model.compression.rank_policies import PRESETS

    types = field_types(ExportOptions)
    by_dest = {a.dest: a for a in export_parser()._actions}
    for f in fields(ExportOptions):
        action = by_dest[f.name]
        if action.choices is not None or option_of(f).consts:
            assert isinstance(types[f.name], type) and issubclass(types[f.name], Choice), f.name
        if isinstance(types[f.name], type) and issubclass(types[f.name], Choice) and action.choices is not None:
            assert tuple(action.choices) == types[f.name].values(), f.name
    assert Precision.values() == PRECISIONS and set(Preset.values()) == set(PRESETS)
    assert set(Policy.values()) == {"liteasr", "budget", "profile"}


def test_choices_read_write_and_serialize_as_their_strings(tmp_path):
    opts = ExportOptions(output=str(tmp_path / "out"), engine="trt", precision="fp16", ranks=str(tmp_path / "r.json"))
    assert opts.engine is opts.engine.TRT and opts.engine == "trt" and f"{opts.engine}" == "trt"
    assert str(opts.precision) == "fp16" and isinstance(opts.output, Path) and isinstance(opts.ranks, Path)
    recorded = json.loads(json.dumps(asdict(opts), default=str))
    assert recorded["engine"] == "trt" and recorded["precision"] == "fp16" and recorded["packing"] == "both"
    with pytest.raises(LiteASRError) as error:
        ExportOptions(output=tmp_path, engine="tflite")
    assert error.value.field == "engine" and "onnx, trt" in str(error.value)


def test_every_flag_is_a_declared_field_and_back():
    parser = export_parser()
    declared = {f.name for f in fields(ExportOptions) if option_of(f).cli}
    assert _dests(parser) - CLI_ONLY == declared
    from liteasr_export.app.ray_jobs.cluster import LOCAL

    ray = next(a for a in parser._actions if a.dest == "ray")
    assert ray.const == LOCAL


def test_the_defaults_are_the_declared_ones():
    args = export_parser().parse_args([])
    for f in fields(ExportOptions):
        if "default" not in option_of(f).extra and f.name != "output":
            assert getattr(args, f.name) == f.default, f.name


def _named_parameters(docstring_nodes) -> dict[str, list[str]]:
    """Every parameter name an error can name: marked in a message
    (```target_size```), given as ``field=``, or passed by name to a check."""
    found: dict[str, list[str]] = {}
    by_position = {"check_value": 1, "check_output_file": 1, "check_writable_folder": 1, "given_as": 0, "_about": 0}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            where = str(path.relative_to(ROOT))
            tree = ast.parse(path.read_text())
            docstrings = docstring_nodes(tree)
            for node in ast.walk(tree):
                names = []
                if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
                    names = [m.group(1) for m in NAMED.finditer(node.value)]
                elif isinstance(node, ast.Call):
                    call = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
                    args = [k.value for k in node.keywords if k.arg == "field"]
                    if call in by_position and len(node.args) > by_position[call]:
                        args.append(node.args[by_position[call]])
                    names = [a.value for a in args if isinstance(a, ast.Constant) and isinstance(a.value, str)]
                for name in names:
                    found.setdefault(name, []).append(f"{where}:{node.lineno}")
    types = field_types(ExportOptions)
    for f in fields(ExportOptions):  # checked by name from the declaration: ExportOptions.check, Choice.parse
        if option_of(f).check or (isinstance(types[f.name], type) and issubclass(types[f.name], Choice)):
            found.setdefault(f.name, []).append("ExportOptions")
    return found


def test_every_parameter_an_error_names_has_a_flag(docstring_nodes):
    found = _named_parameters(docstring_nodes)
    assert {"eval_limit", "target_size", "force", "validate", "cache_dir", "language"} <= set(found)
    flags = {}
    for make in (export_parser, transcribe_parser, eval_parser, serve_parser):
        flags.update(field_flags(make()))
    missing = {name: where for name, where in found.items() if name not in flags and name not in LIBRARY_ONLY}
    assert missing == {}
    assert not set(LIBRARY_ONLY) & set(flags)


@pytest.mark.parametrize("make, expect_plain, expect_flag", [
    (lambda tmp: ExportOptions(output=tmp, eval_limit=0).check(),
     "eval_limit must be a whole number >= 1, got 0", "--eval-limit must be a whole number >= 1, got 0"),
    (lambda tmp: ExportOptions(output=tmp, precision="bf16").check(),
     "precision=bf16 is a TensorRT engine precision", "--bf16 is a TensorRT engine precision"),
    (lambda tmp: ExportOptions(output=tmp, target_wer_increase=1.0, validate=False).check(),
     "drop validate=False", "drop --no-validate"),
])
def test_a_library_error_names_the_field_and_the_cli_the_flag(make, expect_plain, expect_flag, tmp_path):
    with pytest.raises(LiteASRError) as error:
        make(tmp_path / "out")
    assert expect_plain in str(error.value) and "--" not in str(error.value)
    assert error.value.field in {f.name for f in fields(ExportOptions)}
    assert expect_flag in error.value.render(flag_namer(export_parser()))


def test_library_errors_below_the_options_name_their_parameters(tmp_path):
    from liteasr_export.core.decoding import SearchOptions
    from liteasr_export.core.output_folder import check_output
    from liteasr_export.model.compression.rank_policies import BudgetPolicy

    with pytest.raises(LiteASRError) as error:
        BudgetPolicy(target_size=1.5)
    assert str(error.value).startswith("target_size 1.5 is outside (0, 1]") and error.value.field == "target_size"
    assert error.value.render(flag_namer(export_parser())).startswith("--target-size 1.5 is outside (0, 1]")

    (tmp_path / "out").mkdir()
    with pytest.raises(LiteASRError) as error:
        check_output(tmp_path / "out", force=False)
    assert "pass force=True" in str(error.value) and "--" not in str(error.value)
    assert "pass --force to replace it, or choose another --output" in error.value.render(flag_namer(export_parser()))

    with pytest.raises(LiteASRError) as error:
        SearchOptions(patience=0).check()
    assert error.value.field == "patience" and "--" not in str(error.value)
    assert error.value.render(flag_namer(transcribe_parser())).startswith("--patience must be a number > 0")


def test_a_caller_names_the_option_it_passed_on():
    error = LiteASRError("manifest not found: x.jsonl", "check the path").given_as("calib")
    assert str(error) == "calib: manifest not found: x.jsonl. check the path" and error.field == "calib"
    assert error.render(flag_namer(export_parser())).startswith("--calib: manifest not found")
    aliased = LiteASRError("`max_batch` must be 1 or more", field="max_batch")
    assert aliased.render(flag_namer(export_parser())) == "--max-batch must be 1 or more"
    ort = LiteASRError("give `cache_dir` a writable folder", field="cache_dir")
    assert ort.render(flag_namer(transcribe_parser())) == "give --ort-cache a writable folder"


def test_the_cli_prints_the_flag(tmp_path, capsys):
    from liteasr_export.app.cli import export_main

    assert export_main(["--output", str(tmp_path / "out"), "--quiet", "--engine", "trt", "--int8"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("liteasr-export: error: --int8 is the ONNX Runtime CPU quantization. "
                          "use --engine trt --fp16, or --engine onnx --int8")
