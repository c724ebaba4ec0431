"""Fetch the pinned plotly.js cartesian bundle from the npm registry into the cache.

``kbp report`` does this on first use; run it ahead of time (e.g. in CI, or
before going offline) with ``python scripts/vendor_js.py``. Uses ``npm pack``
(the registry's own client), checks the tarball against the pinned integrity
hash, and keeps only ``plotly-cartesian.min.js`` under ``$KBP_CACHE_DIR`` or
``~/.cache/kbp_notebook``; nothing lands in the repo.
"""

from __future__ import annotations

import sys

from kbp_notebook.report import PLOTLY_BUNDLE_PACKAGE, PLOTLY_JS_VERSION, ensure_plotly_bundle

if __name__ == "__main__":
    path = ensure_plotly_bundle(quiet=False)
    print(f"{PLOTLY_BUNDLE_PACKAGE}@{PLOTLY_JS_VERSION}: {path}")
    sys.exit(0)
