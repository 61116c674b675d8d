"""Reading a config: the YAML file, `--set KEY=VALUE` overrides, and the checks that need the
whole config (the output folder, the memory the build needs).

Relative paths in the file (and in `--set` values, which count as if written in the file)
resolve against the folder holding the config file. `--output-dir` on the command line resolves
against the current directory, as command-line paths do. When `output.dir` is omitted, outputs
go to `./outputs` in the current directory.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml

from generator.config.parsing import parse_config, resolve_path
from generator.config.resources import backbone_network, check_memory, workload
from generator.config.schema import Config
from generator.errors import UserError


def load_config(path: Path, overrides: list[str] = (), output_dir: Path | None = None) -> Config:
    """Read `path`, apply `--set KEY=VALUE` overrides and return the validated config."""
    path = Path(path)
    raw = read_config_file(path)
    for override in overrides:
        apply_override(raw, override)
    return config_from_raw(raw, path, output_dir)


def read_config_file(path: Path) -> dict:
    """The config file's mapping, as written (nothing validated yet)."""
    if path.is_dir():
        raise UserError(f"config file {path} is a folder: pass the path of a YAML config")
    if not path.is_file():
        raise UserError(f"config file {path} not found: pass the path of a YAML config")
    try:
        raw = _load_yaml(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as error:
        raise UserError(
            f"{path}: not UTF-8 text (byte {error.start}): save the config as UTF-8"
        ) from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        problem = f" ({error.problem})" if getattr(error, "problem", None) else ""
        raise UserError(f"{path}: not valid YAML{where}{problem}: fix the syntax") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise UserError(f"{path}: the top level must be a mapping of sections (name, model, ...)")
    return raw


def config_from_raw(raw: dict, path: Path, output_dir: Path | None = None) -> Config:
    """Validate the mapping read from `path` (relative paths resolve against its folder).

    Last come the checks that need the whole config: the output folder (`--output-dir` when
    given, else `output.dir`) and the memory the build needs.
    """
    config = parse_config(raw, base=path.resolve().parent, source=path)
    field = "output.dir"
    if output_dir is not None:
        field = "--output-dir"
        resolved = resolve_path(Path.cwd(), str(output_dir), field)
        config = replace(config, output=replace(config.output, dir=resolved))
    _check_output_dir(config.output.dir, config.name, field)
    work = workload(config)
    if config.model.path is None:
        shape = config.model.input_shape
        check_memory(
            backbone_network(config.model), shape, work, f"model.input_shape: {list(shape)}"
        )
    return replace(config, model=replace(config.model, workload=work))


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a key given twice in one mapping.

    PyYAML keeps the last of two equal keys without a word, so a second `model:` section would
    silently replace the first. Keys merged in with `<<:` may still be overridden.
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge" or not isinstance(
                key_node, yaml.ScalarNode
            ):
                continue
            key = (key_node.tag, key_node.value)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key_node.value!r} given twice", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep)


def _load_yaml(text: str) -> Any:
    return yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader: plain data only


def apply_override(raw: dict, override: str) -> None:
    """Set one dotted key, e.g. `model.alpha=0.5` or `vela.targets.0.accelerator=ethos-u55-64`.

    The value is read as YAML, so `0.5` is a number, `[64, 64, 3]` a list and `false` a boolean.
    """
    key, sep, value = override.partition("=")
    if not sep or not key.strip():
        raise UserError(f"--set {override!r}: expected KEY=VALUE, e.g. --set model.alpha=0.5")
    try:
        parsed = _load_yaml(value)
    except yaml.YAMLError:
        raise UserError(f"--set {override!r}: the value is not valid YAML") from None
    parts = key.strip().split(".")
    if not all(parts):
        raise UserError(f"--set {key.strip()}: an empty key between dots: e.g. model.alpha=0.5")
    node: Any = raw
    for depth, part in enumerate(parts[:-1]):
        where = ".".join(parts[: depth + 1])
        if isinstance(node, list):
            node = node[_list_index(node, part, where)]
        elif isinstance(node, dict):
            node = node.setdefault(part, {})
        else:
            raise UserError(f"--set {key}: {where} is not a section, so it has no keys")
    last = parts[-1]
    if isinstance(node, list):
        node[_list_index(node, last, key)] = parsed
    elif isinstance(node, dict):
        node[last] = parsed
    else:
        raise UserError(f"--set {key}: {'.'.join(parts[:-1])} is not a section, so it has no keys")


def _list_index(items: list, part: str, where: str) -> int:
    if not items:
        raise UserError(f"--set {where}: the list is empty: set the whole list instead")
    if not part.isdigit() or int(part) >= len(items):
        raise UserError(f"--set {where}: use an index from 0 to {len(items) - 1}")
    return int(part)


def _check_output_dir(folder: Path, name: str, field: str) -> None:
    """Refuse an output folder a build could not create or publish into.

    The build creates `folder` (and missing parents) and moves its result to `folder/<name>`:
    a file at either place, or at a parent, fails only after minutes of work otherwise.
    """
    existing = folder
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        if existing == folder:
            raise UserError(f"{field}: {folder} is a file: give a folder (created if missing)")
        raise UserError(f"{field}: cannot create {folder}: {existing} is a file: give a folder")
    final = folder / name
    if final.exists() and not final.is_dir():
        raise UserError(
            f"{field}: {final} is a file where the build's folder goes: remove it, or change "
            "name or the output folder"
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UserError(f"{field}: cannot write in {existing}: give a folder you can write to")
