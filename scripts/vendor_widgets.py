"""Fetch the pinned @jupyter-widgets/html-manager from the npm registry into the cache.

``kbp report`` does this on first use; run it ahead of time (e.g. in CI, or
before going offline) with ``python scripts/vendor_widgets.py``. Uses ``npm
pack`` (the registry's own client), checks the tarball against the pinned
integrity hash, and keeps only ``dist/embed.js`` under
``$KBP_CACHE_DIR`` or ``~/.cache/kbp_notebook``; nothing lands in the repo.
"""

from __future__ import annotations

import sys

from kbp_notebook.report import HTML_MANAGER_VERSION, ensure_widget_bundle

if __name__ == "__main__":
    path = ensure_widget_bundle(quiet=False)
    print(f"@jupyter-widgets/html-manager@{HTML_MANAGER_VERSION}: {path}")
    sys.exit(0)
