"""Vela's built-in system configurations file, read without running Vela (the config offers
its system configs and memory modes before any work starts)."""

from __future__ import annotations

import configparser
import importlib.resources
from pathlib import Path


def vela_ini_path() -> Path:
    """Vela's built-in system configurations file (`vela --list-config-files`)."""
    return Path(str(importlib.resources.files("ethosu") / "config_files" / "Arm" / "vela.ini"))


def vela_ini_sections() -> tuple[list[str], list[str]]:
    """System configs and memory modes defined in Vela's Arm/vela.ini, read without Vela."""
    parser = configparser.ConfigParser()
    parser.read(vela_ini_path())
    systems = [s.split(".", 1)[1] for s in parser.sections() if s.startswith("System_Config.")]
    modes = [s.split(".", 1)[1] for s in parser.sections() if s.startswith("Memory_Mode.")]
    return systems, modes
