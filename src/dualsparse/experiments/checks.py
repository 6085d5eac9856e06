"""Config checks shared by every section validator: one problem list, and the messages it holds.

Every check appends a message to a :class:`Problems` list instead of raising, so that a config
reports all its problems at once; each message names the section and key, what is wrong and the
valid choices (:func:`unknown` adds a "did you mean" hint).
"""

from __future__ import annotations

import difflib
import math
import numbers


class Problems(list):
    """The problems found so far (strings, in the order found)."""

    def unknown_keys(self, where: str, table: dict, valid) -> None:
        for key in table:
            if key not in valid:
                self.append(unknown(f"key {key!r} in {where}", key, valid))

    def mention(self, prefix: str) -> bool:
        """Whether a problem so far mentions ``prefix`` (e.g. ``"[missingness]"``)."""
        return any(str(p).find(prefix) >= 0 for p in self)


def unknown(what: str, name, valid) -> str:
    """``unknown <what> (did you mean 'x'?); valid: a, b, c``."""
    valid = list(valid)
    close = difflib.get_close_matches(str(name), [str(v) for v in valid], n=1, cutoff=0.5)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"unknown {what}{hint}; valid: {', '.join(map(str, valid))}"


def is_int(v) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def is_number(v) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and not (isinstance(v, float) and math.isnan(v))


def check_table(value, where, problems) -> dict:
    """``value`` if it is a table; otherwise a problem and an empty table."""
    if not isinstance(value, dict):
        problems.append(f"{where} must be a table (a {where} section), got {type(value).__name__}")
        return {}
    return value


def table_of_tables(value, where, problems) -> dict:
    """``{name: {option: value}}`` with sorted options (e.g. ``[data.options]``)."""
    if not isinstance(value, dict):
        problems.append(f"{where} must be a table of tables, e.g. {where[:-1]}.NAME] with NAME's options; got {value!r}")
        return {}
    out = {}
    for k, v in value.items():
        if not isinstance(v, dict):
            problems.append(f"{where[:-1]}.{k}] must be a table of options, got {v!r}")
            continue
        out[k] = dict(sorted(v.items()))
    return out


def str_list(table, key, where, problems, required=False, default=None, hint=""):
    """A list of names (a single string is a list of one), each once."""
    if key not in table:
        if required:
            problems.append(f"{where} {key} is missing" + (f": {hint}" if hint else ""))
            return []
        return default
    value = table[key]
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        problems.append(f"{where} {key} must be a list of names, got {value!r}")
        return []
    if not value:
        problems.append(f"{where} {key} is empty: the grid would have no runs" + (f"; {hint}" if hint else ""))
        return []
    dup = sorted({v for v in value if value.count(v) > 1})
    if dup:
        problems.append(f"{where} {key} lists {dup} more than once; give each once")
    return list(dict.fromkeys(value))


_SINGULAR = {"strategies": "strategy", "scenarios": "scenario", "train_models": "model", "replay": "replay strategy"}


def name_list(table, key, where, problems, valid, default=None, required=False, extra=()):
    """A list of names from ``valid`` (+ ``extra``); reports unknown names with the choices."""
    if key not in table:
        if required:
            problems.append(f"{where} {key} is missing; choose from {', '.join(map(str, [*valid, *extra]))}")
            return []
        return list(default) if default is not None else None
    value = table[key]
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        problems.append(f"{where} {key} must be a non-empty list of names, got {value!r}; "
                        f"choose from {', '.join(map(str, [*valid, *extra]))}")
        return []
    out = []
    for v in value:
        if v not in valid and v not in extra:
            problems.append(unknown(f"{_SINGULAR.get(key, key)} {v!r} in {where} {key}", v, [*valid, *extra]))
        elif v in out:
            problems.append(f"{where} {key} lists {v!r} more than once; give each once")
        else:
            out.append(v)
    return out


def number_list(table, key, where, problems, default=None, lo=None, hi=None, lo_open=False, hi_open=False, what="value"):
    """A list of numbers in an interval (a single number is a list of one), each once."""
    if key not in table:
        return list(default) if default is not None else None
    value = table[key]
    if is_number(value):
        value = [value]
    if not isinstance(value, list) or not value:
        problems.append(f"{where} {key} must be a non-empty list of numbers, got {value!r}")
        return []
    out = []
    for v in value:
        if not is_number(v):
            problems.append(f"{where} {key}: {v!r} is not a number")
            continue
        v = float(v)
        bad = (lo is not None and (v < lo or (lo_open and v == lo))) or (hi is not None and (v > hi or (hi_open and v == hi)))
        if bad:
            interval = f"{'(' if lo_open else '['}{lo if lo is not None else '-inf'}, {hi if hi is not None else 'inf'}{')' if hi_open else ']'}"
            problems.append(f"{where} {key}: {v!r} is not a valid {what}; each must be in {interval}")
            continue
        out.append(v)
    if len(set(out)) != len(out):
        problems.append(f"{where} {key} has duplicates: {value}; give each value once")
    return list(dict.fromkeys(out))


def share_list(table, key, where, problems):
    """Shares of rows in (0, 1), sorted, each once (e.g. ``[dynamics.subsets] fractions``)."""
    if key not in table:
        problems.append(f"{where} {key} is missing: the shares of training rows to keep, e.g. {key} = [0.3, 0.5]")
        return []
    value = table[key]
    if is_number(value):
        value = [value]
    if not isinstance(value, list) or not value:
        problems.append(f"{where} {key} must be a non-empty list of numbers in (0, 1), got {value!r}")
        return []
    out = []
    for v in value:
        if not is_number(v) or not 0 < v < 1:
            problems.append(f"{where} {key}: {v!r} is not a share of rows in (0, 1) (the full data is the grid run itself)")
        elif float(v) in out:
            problems.append(f"{where} {key} lists {v!r} more than once; give each once")
        else:
            out.append(float(v))
    return sorted(out)


def fraction_key(table, key, where, problems, lo_open):
    """``table[key]`` must be in [0, 1) (or (0, 1) with ``lo_open``)."""
    v = table[key]
    if not is_number(v) or v >= 1 or v < 0 or (lo_open and v == 0):
        problems.append(f"{where} {key} must be a number in {'(' if lo_open else '['}0, 1), got {v!r}")


def int_value(table, key, where, problems, default, lo, hi=None):
    value = table.get(key, default)
    if value is None:
        return None
    if not is_int(value) or value < lo or (hi is not None and value > hi):
        bound = f">= {lo}" if hi is None else f"in [{lo}, {hi}]"
        problems.append(f"{where} {key} must be an integer {bound}, got {value!r}")
        return default
    return int(value)


def number_value(table, key, where, problems, default, lo_open=True, hi_open=True, lo=0.0, hi=1.0, what="a number"):
    value = table.get(key, default)
    if not is_number(value) or value < lo or value > hi or (lo_open and value == lo) or (hi_open and value == hi):
        interval = f"{'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"
        problems.append(f"{where} {key} must be {what} in {interval}, got {value!r}")
        return default
    return float(value)


def choice(table, key, where, problems, valid, default, explain=""):
    """One of ``valid`` (default ``default``); an unknown value is a problem and gives the default."""
    value = table.get(key, default)
    if value not in valid:
        problems.append(unknown(f"{where} {key} {value!r}", value, valid) + explain)
        return default
    return value
