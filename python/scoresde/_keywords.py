"""Keywords to command-line flags: the one place where Python's calling convention meets the
command line's. ``steps=20`` becomes ``--steps=20``; a switch (``brownian=True``) becomes
``--brownian``; a list (``orders=[3, 3, 1]``) becomes ``--orders=3,3,1``; floats are written
with ``repr``, which round-trips exactly. Flags and their defaults are read from the Rust parser
itself, so a flag added to the command line is a keyword here with no change."""

from __future__ import annotations

import functools
import inspect
import keyword
import numbers
import os

import numpy as np

from . import _scoresde


@functools.lru_cache(maxsize=None)
def flag_table(command):
    """The flags of `command` as {keyword: flag description}, in declaration order. A flag
    whose name is a Python keyword gets a trailing underscore (`--class` is `class_`)."""
    table = {}
    for f in _scoresde.flags(command):
        name = f["name"].replace("-", "_")
        table[name + "_" if keyword.iskeyword(name) else name] = f
    return table


def _word(key, value):
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        return repr(float(value))
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple, np.ndarray)):
        return ",".join(_word(key, v) for v in np.asarray(value).ravel().tolist())
    raise TypeError(f"{key} = {value!r}: a {type(value).__name__} is not a value of --{key.replace('_', '-')}")


def words(command, function, kwargs):
    """The flag words for `kwargs`; unknown keywords raise TypeError as Python does."""
    table = flag_table(command)
    out = []
    for key, value in kwargs.items():
        flag = table.get(key)
        if flag is None:
            raise TypeError(f"{function}() got an unexpected keyword argument {key!r}")
        if value is None:
            continue
        name = "--" + flag["name"]
        if not flag["takes_value"]:
            if not isinstance(value, (bool, np.bool_)):
                raise TypeError(f"{key} = {value!r}: a switch takes True or False")
            if value:
                out.append(name)
            continue
        out.append(f"{name}={_word(key, value)}")
    return out


def _default(flag):
    if not flag["takes_value"]:
        return False
    text = flag["default"]
    if text is None:
        return None
    for parse in (int, float):
        try:
            return parse(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text, text)


def signature(command, extra, skip=()):
    """An inspect.Signature of keyword-only parameters: `extra` (name, default) first, then
    every flag of `command` not in `skip`, with the flag's default."""
    params = [inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, default=d) for n, d in extra]
    seen = {n for n, _ in extra}
    for key, flag in flag_table(command).items():
        if key in seen or key in skip:
            continue
        params.append(inspect.Parameter(key, inspect.Parameter.KEYWORD_ONLY, default=_default(flag)))
    return inspect.Signature(params)


def keyword_doc(command, skip=()):
    """The keywords section of a docstring: every flag with its default and help."""
    lines = []
    for key, flag in flag_table(command).items():
        if key in skip:
            continue
        default = _default(flag)
        listed = flag["choices"] if sorted(flag["choices"]) != ["false", "true"] else []
        choices = f" (one of {', '.join(listed)})" if listed else ""
        lines.append(f"    {key} = {default!r}{choices}")
        help_text = " ".join(flag["help"].split())
        if help_text:
            lines.append(f"        {help_text}")
    return "\n".join(lines)
