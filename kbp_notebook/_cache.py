"""The cache folder of kbp_notebook: one rule for every caller (private).

Kafka jars (``sandbox``), the sandbox state file and the vendored JavaScript of
exported reports (``report``) live here. The rule, in order:

1. ``$KBP_CACHE_DIR`` when set (``~`` expanded);
2. else ``$XDG_CACHE_HOME/kbp_notebook`` when ``XDG_CACHE_HOME`` is set
   (the XDG base-directory convention);
3. else ``~/.cache/kbp_notebook``.

The folder is created if missing.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["cache_dir"]


def cache_dir() -> Path:
    """Return the cache folder of kbp_notebook, created if missing.

    Returns
    -------
    Path
        ``$KBP_CACHE_DIR`` if set, else ``$XDG_CACHE_HOME/kbp_notebook``, else
        ``~/.cache/kbp_notebook``.
    """
    configured = os.environ.get("KBP_CACHE_DIR")
    if configured:
        path = Path(configured).expanduser()
    else:
        base = os.environ.get("XDG_CACHE_HOME")
        path = (Path(base).expanduser() if base else Path.home() / ".cache") / "kbp_notebook"
    path.mkdir(parents=True, exist_ok=True)
    return path
