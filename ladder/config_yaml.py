"""Strict YAML and typed settings: how text becomes a config's values.

YAML is read as YAML 1.1 (PyYAML) with YAML 1.2's floats (``1e-3`` and ``-.5`` are numbers), and a
key given twice is refused. :func:`update_settings` writes plain data into the config dataclasses,
refusing unknown keys and coercing each value to its field's type with a one-line error.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from dataclasses import fields
from pathlib import Path
from typing import Any

import yaml

from ladder.config_priors import flat_key_hint


class ConfigError(ValueError):
    """An invalid configuration; the message lists the valid choices."""


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML config file into a dict, with a clear error for a missing, unreadable or
    malformed file or a key given twice."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"config file {path} is a folder; give a YAML file, e.g. configs/*.yaml")
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"config file {path} cannot be read as text ({err}); give a YAML "
                          "file") from err
    data = load_yaml(text, f"config file {path}")
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping, not {type(data).__name__}")
    return data


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader with YAML 1.2's floats, which YAML 1.1 reads as strings: no dot
    (``1e-3``), an unsigned exponent (``1.0e3``) or a signed leading dot (``-.5``)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)?$"),
    list("-+0123456789."),
)  # after the int and YAML 1.1 float resolvers, so integers stay integers


def load_yaml(text: str, source: str) -> Any:
    """``text`` read by :class:`_Loader`, refusing a key given twice; ``source`` names the text
    (a file or an override) in the one-line error."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _refuse_duplicate_keys(node, source, "", set())
        return loader.construct_document(node)
    except yaml.YAMLError as err:
        raise ConfigError(f"{source} is not valid YAML: {_yaml_problem(err)}") from err
    finally:
        loader.dispose()


def _yaml_problem(err: yaml.YAMLError) -> str:
    mark = getattr(err, "problem_mark", None)
    problem = getattr(err, "problem", None)
    if problem and mark is not None:
        return f"{problem} (line {mark.line + 1}, column {mark.column + 1})"
    return " ".join(str(err).split())


def _refuse_duplicate_keys(node: yaml.Node, source: str, path: str, seen: set[int]) -> None:
    """Refuse a mapping that names a key twice (PyYAML keeps the last); ``<<`` merges may repeat
    keys, as YAML allows."""
    if id(node) in seen:  # an alias: checked where its anchor is
        return
    seen.add(id(node))
    if isinstance(node, yaml.SequenceNode):
        for item in node.value:
            _refuse_duplicate_keys(item, source, path, seen)
    if not isinstance(node, yaml.MappingNode):
        return
    lines: dict[str, int] = {}
    for key_node, value_node in node.value:
        inner = path
        if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
            key, line = key_node.value, key_node.start_mark.line + 1
            if key in lines:
                raise ConfigError(f"{source}: key {path + key!r} is given twice (lines "
                                  f"{lines[key]} and {line}); keep one of them")
            lines[key] = line
            inner = f"{path}{key}."
        _refuse_duplicate_keys(value_node, source, inner, seen)


def flat_settings(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested plain data as one level of dotted keys: ``{"model": {"gmm": {"fit": "em"}}}`` as
    ``{"model.gmm.fit": "em"}``."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            out.update(flat_settings(value, f"{prefix}{key}."))
        else:
            out[prefix + key] = value
    return out


def plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value



def update_settings(obj: Any, data: dict[str, Any], where: str) -> None:
    if not isinstance(data, dict):
        raise ConfigError(f"{where[:-1] or 'config'} must be a mapping of settings, got {data!r}")
    known = {f.name: f for f in fields(obj)}
    hints = typing.get_type_hints(type(obj))
    for key, value in data.items():
        if key not in known:
            path = f"{where}{key}"
            raise ConfigError(f"unknown key {path!r}{flat_key_hint(path)}; valid keys here: "
                              f"{', '.join(sorted(known))}")
        current = getattr(obj, key)
        if dataclasses.is_dataclass(current):
            update_settings(current, {} if value is None else value, f"{where}{key}.")  # empty: no change
        else:
            setattr(obj, key, _coerce(value, hints[key], where + key))


def _coerce(value: Any, hint: Any, name: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, name)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError(errors[0])
    if origin is tuple:
        if not isinstance(value, (list, tuple)) or len(value) != len(args):
            raise ConfigError(f"{name} must be a list of {len(args)} numbers, got {value!r}")
        return tuple(_coerce(v, a, name) for v, a in zip(value, args, strict=True))
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{name} must be true or false, got {value!r}")
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ConfigError(f"{name} must be an integer, got {value!r}")
    if hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            try:
                return float(value)
            except OverflowError:
                raise ConfigError(f"{name} is an integer of {len(str(abs(value)))} digits, too "
                                  "large for a float; give a smaller number") from None
        raise ConfigError(f"{name} must be a number, got {value!r}")
    if hint is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{name} must be a string, got {value!r}")
    raise ConfigError(f"{name}: unsupported type {hint}")  # pragma: no cover - schema bug
