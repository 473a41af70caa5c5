"""Every ``--flag`` an error message or hint names exists in one of the
command lines (liteasr-export, liteasr-transcribe, liteasr-eval,
liteasr-serve and ``python -m calibration.fotaq``): a hint that names a missing flag sends the
user nowhere."""

from __future__ import annotations

import argparse
import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("liteasr_export", "calibration", "exporters", "engines")
FLAG = re.compile(r"(?<![\w-])--([a-z][a-z0-9]*(?:-[a-z0-9]+)*)")
#: flags of other programs that hints quote in full commands (pip,
#: CTranslate2's ct2-transformers-converter)
FOREIGN = {"extra-index-url", "force-reinstall", "quantization"}
#: files whose strings are another program's command lines (trtexec's flags)
SKIP_FILES = {"trtexec_script.py"}


def _parser_flags(parser: argparse.ArgumentParser) -> set[str]:
    flags = set()
    for action in parser._actions:
        flags.update(s[2:] for s in action.option_strings if s.startswith("--"))
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                flags |= _parser_flags(sub)
    return flags


def cli_flags() -> set[str]:
    from calibration import fotaq
    from liteasr_export.app.cli import eval_parser, export_parser, serve_parser, transcribe_parser

    flags = set()
    for make in (export_parser, transcribe_parser, eval_parser, serve_parser):
        flags |= _parser_flags(make())
    captured = {}

    class Stop(Exception):
        pass

    def capture(self, *args, **kwargs):
        captured["parser"] = self
        raise Stop

    original = argparse.ArgumentParser.parse_args
    argparse.ArgumentParser.parse_args = capture
    try:
        fotaq.main(["info"])
    except Stop:
        pass
    finally:
        argparse.ArgumentParser.parse_args = original
    return flags | _parser_flags(captured["parser"])


def named_flags(docstring_nodes) -> dict[str, list[str]]:
    """flag -> where it is named, over every string literal of the packages
    (messages, hints, f-string parts, constants such as FETCH_HINT) but
    docstrings and the trtexec command lines of the build script."""
    found: dict[str, list[str]] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if path.name in SKIP_FILES:
                continue
            tree = ast.parse(path.read_text())
            docstrings = docstring_nodes(tree)
            for node in ast.walk(tree):
                if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
                    for match in FLAG.finditer(node.value):
                        found.setdefault(match.group(1), []).append(f"{path.relative_to(ROOT)}:{node.lineno}")
    return found


def test_the_scan_sees_hints(docstring_nodes):
    found = named_flags(docstring_nodes)
    # library hints name parameters (`calib`), not flags: tests/test_options.py checks those
    assert {"max-batch", "engine", "no-validate", "target-size"} <= set(found)


def test_every_flag_a_message_names_exists(docstring_nodes):
    known = cli_flags() | FOREIGN
    missing = {flag: where for flag, where in named_flags(docstring_nodes).items() if flag not in known}
    assert missing == {}
