"""Names and defaults declared once, imported wherever they are used."""

from __future__ import annotations

# a Gaussian kernel with ``truncate: true`` is cut at this many bandwidths
GAUSSIAN_CUT_BANDWIDTHS = 3.0
