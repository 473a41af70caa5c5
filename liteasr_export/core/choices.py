"""Typed options, declared once: closed choices as :class:`Choice` enums,
and each field's help, flag and check as :func:`option` metadata of its
dataclass field. The command lines build their argparse options from these
declarations; the library checks values with :func:`check_value`, whose
errors name the field (``eval_limit``), never a flag."""

from __future__ import annotations

import math
from dataclasses import MISSING, Field, dataclass, field
from enum import Enum
from typing import Any, Mapping

from liteasr_export.core.errors import LiteASRError

__all__ = ["CHECKS", "Choice", "Option", "check_value", "option", "option_of"]


class Choice(str, Enum):
    """A closed choice: a ``str`` that compares, hashes, formats and
    serializes (JSON, manifests) as its value, so ``opts.engine == "trt"``
    and ``f"{opts.engine}"`` read as before."""

    def __str__(self) -> str:
        return str.__str__(self)

    def __format__(self, spec: str) -> str:
        return str.__format__(str(self), spec)

    @classmethod
    def values(cls) -> tuple[str, ...]:
        return tuple(member.value for member in cls)

    @classmethod
    def parse(cls, value: Any, name: str) -> "Choice":
        """``value`` (a member or its string) as a member; an error naming ``name`` otherwise."""
        try:
            return cls(value)
        except ValueError:
            raise LiteASRError(f"unknown `{name}` {value!r}", f"use one of {', '.join(cls.values())}",
                               field=name) from None


#: value checks an option can declare: name -> (test, what a good value is)
CHECKS: dict[str, tuple[Any, str]] = {
    "count": (lambda v: not isinstance(v, bool) and isinstance(v, int) and v >= 1, "a whole number >= 1"),
    "count_or_zero": (lambda v: not isinstance(v, bool) and isinstance(v, int) and v >= 0, "a whole number >= 0"),
    "fraction": (lambda v: _number(v) and 0 <= v <= 1, "between 0 and 1"),
    "points": (lambda v: _number(v) and v >= 0, "0 or more"),
}


def _number(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float)) and not math.isnan(value)


def check_value(value: Any, name: str, check: str) -> None:
    """``value`` of the parameter ``name`` passes ``check`` (a :data:`CHECKS`
    name); ``None`` always does (not given, or off)."""
    test, good = CHECKS[check]
    if value is not None and not test(value):
        raise LiteASRError(f"`{name}` must be {good}, got {value!r}", f"pass {good}", field=name)


@dataclass(frozen=True)
class Option:
    """How one field of an options dataclass is offered and checked.

    ``help``: the command line's help text. ``flags``: its option strings
    (default: ``--field-name``). ``switch``: for a bool, the one flag that
    sets the other value (``--force``, ``--no-compress``). ``consts``: flags
    that set the field to a value each, ``(flag, value, help)`` (``--fp16``).
    ``check``: a :data:`CHECKS` name. ``group``: the help section. ``text``:
    how the command line reads the text (``path``, ``paths``: comma-separated).
    ``cli``: False for a field the command line sets itself. ``extra``: more
    argparse keywords (``nargs``, ``const``, ``metavar``). ``feeds``: the
    library parameters this field is passed to under another name
    (``trt_max_batch`` feeds ``ProfileOptions.max_batch``), so that their
    errors show this field's flag."""

    help: str = ""
    flags: tuple[str, ...] = ()
    switch: str | None = None
    consts: tuple[tuple[str, Any, str], ...] = ()
    check: str | None = None
    group: str | None = None
    text: str | None = None
    cli: bool = True
    extra: Mapping[str, Any] = field(default_factory=dict)
    feeds: tuple[str, ...] = ()


def option(default: Any = MISSING, help: str = "", **how: Any) -> Any:
    """A dataclass field with its default and its :class:`Option`, declared once."""
    return field(default=default, metadata={"option": Option(help, **how)})


def option_of(f: Field) -> Option:
    """The :class:`Option` of a dataclass field (a bare one when it declares none)."""
    return f.metadata.get("option", Option())
