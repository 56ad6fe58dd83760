"""What the catalog tells the vector index so it can catch up in place (see vectors.py)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class VectorChanges:
    """The catalog's vector changes after ``since``, read in one snapshot.

    Every id in ``changed`` may be in the index with an outdated vector, or be there when it
    should not, or be missing: remove them all, then add ``ids``/``vectors`` (those of them
    searchable now, with their current vectors), and the index holds exactly the
    ``searchable`` vectors of the catalog at ``mark``. ``vectors`` is left empty when
    ``complete`` is false (more changes than the caller wanted to read) or a rebuild was
    requested: both mean "rebuild instead".
    """

    since: int
    mark: int
    changed: np.ndarray
    ids: np.ndarray
    vectors: np.ndarray
    searchable: int
    rebuild_requested: bool
    complete: bool
