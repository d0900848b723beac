"""LSL configuration: keep discovery on this machine unless a lab config is chosen.

liblsl reads its configuration once, from the file named by ``LSLAPICFG``, when it is
first used. Everything in qst-station that touches pylsl imports it through
:func:`pylsl_module`, so the machine-scope config is in place before liblsl starts.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from importlib import resources
from pathlib import Path
from types import ModuleType

_MACHINE_CFG = "lsl_machine.cfg"


def machine_scope_config(session_id: str | None = None) -> Path:
    """Write the machine-scope config with a unique SessionID and return its path."""
    text = resources.files("qst_station.data").joinpath(_MACHINE_CFG).read_text()
    sid = session_id or f"qst-station-{uuid.uuid4().hex[:12]}"
    text = text.replace("SessionID = qst-station-local", f"SessionID = {sid}")
    fd, name = tempfile.mkstemp(prefix="qst-lsl-", suffix=".cfg")
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    return Path(name)


def confine_to_machine() -> Path:
    """Point LSLAPICFG at a machine-scope config unless one is already set."""
    current = os.environ.get("LSLAPICFG")
    if current:
        return Path(current)
    path = machine_scope_config()
    os.environ["LSLAPICFG"] = str(path)
    return path


def pylsl_module() -> ModuleType:
    """Import pylsl after making sure LSL's discovery scope has been decided."""
    confine_to_machine()
    import pylsl

    return pylsl
