"""Sample recordings: Dataset folders recorded from real scenarios on the sandbox.

The samples ship inside the package (``kbp_notebook/sample_data/<name>/``,
package data of the wheel; the repository's top-level ``sample_data`` points
there) and are found with ``importlib.resources``, so an installed wheel has
them as well as a checkout. Set the environment variable ``KBP_SAMPLE_DATA``
to a folder of Dataset folders to use other samples.
"""

from __future__ import annotations

import json
import os
from importlib import resources
from pathlib import Path

from kbp_notebook.collect.storage import read_dataset
from kbp_notebook.errors import KbpInputError
from kbp_notebook.frames import Dataset

__all__ = ["list_samples", "load_sample", "sample_description", "sample_path", "samples_root"]


def samples_root() -> Path:
    """Return the folder that holds the sample Dataset folders."""
    override = os.environ.get("KBP_SAMPLE_DATA")
    if override:
        return Path(override).expanduser()
    # A package installed from a wheel or a checkout is a folder on disk; Parquet needs paths.
    return Path(str(resources.files("kbp_notebook") / "sample_data"))


def _is_dataset(folder: Path) -> bool:
    return folder.is_dir() and ((folder / "meta.json").exists() or (folder / "lag").is_dir())


def list_samples() -> list[str]:
    """Return the names of the available samples, sorted.

    Examples
    --------
    >>> import kbp_notebook as kbp
    >>> names = kbp.list_samples()
    """
    root = samples_root()
    if not root.is_dir():
        return []
    # Hidden folders are recordings still being written (scenarios stage them there).
    return sorted(
        child.name
        for child in root.iterdir()
        if not child.name.startswith(".") and _is_dataset(child)
    )


def sample_path(name: str) -> Path:
    """Return the folder of the sample ``name``.

    Raises
    ------
    KbpInputError
        No sample of that name; the message lists the available ones.
    """
    names = list_samples()
    if not isinstance(name, str) or name not in names:
        available = ", ".join(names) if names else f"none (no Dataset folders in {samples_root()})"
        raise KbpInputError(
            f"No sample named {name!r}; available: {available}. "
            f"Set KBP_SAMPLE_DATA to use another folder of samples.",
            column="name",
        )
    return samples_root() / name


def sample_description(name: str) -> str:
    """Return the one-line description stored in a sample's ``meta.json`` (or '')."""
    meta_file = sample_path(name) / "meta.json"
    try:
        meta = json.loads(meta_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return ""
    text = meta.get("description") or meta.get("scenario") or ""
    return str(text).strip().splitlines()[0] if str(text).strip() else ""


def load_sample(name: str) -> Dataset:
    """Load a bundled sample recording.

    Parameters
    ----------
    name
        One of ``list_samples()``.

    Returns
    -------
    Dataset
        The validated recording (``lag``, ``metrics``, ``events``, ``meta``).

    Raises
    ------
    KbpInputError
        Unknown name (the message lists the available samples).

    Examples
    --------
    >>> import kbp_notebook as kbp
    >>> ds = kbp.load_sample("slow-consumer-then-scale-out")  # doctest: +SKIP
    """
    return read_dataset(sample_path(name))
