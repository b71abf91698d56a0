"""Which commit this code is: the REVISION file touchdeploy writes at the top of each release.

The release is read at import, once per process: a release directory never changes, and a
deploy reloads uWSGI (and restarts the worker) on the new release, which imports it again.
"""

from pathlib import Path

UNKNOWN = "unknown"


def find_revision(start):
    """The content of the nearest REVISION file in `start` or a directory above it.

    `start` is resolved first, so code reached through the `current` symlink finds its own
    release's file (releases/<sha>/REVISION), not whatever `current` points at later.
    """
    here = Path(start).resolve()
    for directory in (here, *here.parents):
        candidate = directory / "REVISION"
        try:
            value = candidate.read_text().strip()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            continue
        if value:
            return value
    return UNKNOWN


REVISION = find_revision(Path(__file__).parent)
