"""Layout: where the field, the side panel and the replay's scrub bar sit in the window.

The field (the world view with its HUD) is at the top left and the panel is a column to
its right, so the two never overlap: the window is as wide as the field plus the panel.
Tab collapses the panel and the field takes the whole width. A window too narrow for
both shows the field only (the panel comes back when the window is widened). The
replay keeps a strip below the field for its scrub bar.

    +---------------------------+---------+
    | field (HUD at its top)    | panel   |
    |                           |         |
    +---------------------------+         |
    | bar (replay only)         |         |
    +---------------------------+---------+
"""

from __future__ import annotations

from dataclasses import dataclass

import pygame

PANEL_WIDTH = 300       # px
MIN_FIELD_WIDTH = 200   # px: below this the panel is not shown, so the field stays usable
BAR_HEIGHT = 40         # px: the replay's scrub bar


@dataclass
class Layout:
    """The rectangles of one window size (all in window pixels).

    Args:
        size: (width, height) of the window, px.
        panel: the panel is wanted (Tab); it is shown when the window is wide enough.
        bar: keep a strip of ``BAR_HEIGHT`` px below the field (the replay's scrub bar).
    """

    size: tuple[int, int]
    panel: bool = True
    bar: bool = False

    def __post_init__(self):
        width, height = (max(1, int(v)) for v in self.size)
        self.size = (width, height)
        self.panel_shown = self.panel and width - PANEL_WIDTH >= MIN_FIELD_WIDTH
        field_width = width - PANEL_WIDTH if self.panel_shown else width
        bar_height = min(BAR_HEIGHT, height // 3) if self.bar else 0
        self.field = pygame.Rect(0, 0, field_width, height - bar_height)
        self.bar_rect = pygame.Rect(0, height - bar_height, field_width, bar_height) if self.bar else None
        self.panel_rect = pygame.Rect(field_width, 0, PANEL_WIDTH, height) if self.panel_shown else None

    def rects(self) -> list[pygame.Rect]:
        """Every rectangle in use (field, bar, panel), for overlap checks."""
        return [r for r in (self.field, self.bar_rect, self.panel_rect) if r is not None]


def window_size_for(field_size: tuple[int, int], panel: bool = True) -> tuple[int, int]:
    """The window size that gives the field ``field_size`` px beside the panel."""
    return field_size[0] + (PANEL_WIDTH if panel else 0), field_size[1]
