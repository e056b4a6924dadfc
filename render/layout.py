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

HEADER_HEIGHT = 26      # px: the panel's title line
FOOTER_HEIGHT = 22      # px: the panel's last line
SLIDER_ROW = 34         # px: one slider (render.panel.ROW_HEIGHT)
MIN_SLIDER_ROWS = 3     # rows of sliders kept visible before the plots take the rest
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


def panel_sections(box: pygame.Rect | None, *, legend_height: int, slider_height: int, charts: tuple[int, int]
                   ) -> dict[str, pygame.Rect]:
    """The panel's parts top to bottom: header, pace slider ("rate"), legend, sliders, plots, footer.

    Args:
        box: the panel's rectangle (None: no panel; every part is empty).
        legend_height: px the legend needs. slider_height: px all the sliders need.
        charts: (least, most) px the plots take; they get what the sliders leave, within that.
    """
    names = ("rate", "legend", "sliders", "plots", "footer")
    if box is None:
        return {k: pygame.Rect(0, 0, 0, 0) for k in names}
    rate = pygame.Rect(box.x, box.y + HEADER_HEIGHT, box.width, SLIDER_ROW)
    legend = pygame.Rect(box.x + 4, rate.bottom + 2, box.width - 8, legend_height)
    footer = pygame.Rect(box.x, box.bottom - FOOTER_HEIGHT, box.width, FOOTER_HEIGHT)
    free = max(0, footer.y - legend.bottom)
    keep = min(free, MIN_SLIDER_ROWS * SLIDER_ROW, slider_height)
    least = min(charts[0], free - keep)
    sliders_h = (min(slider_height, free - least) // SLIDER_ROW) * SLIDER_ROW
    plots_h = max(0, min(free - sliders_h, charts[1]))
    sliders = pygame.Rect(box.x, legend.bottom, box.width, sliders_h)
    plots = pygame.Rect(box.x + 6, footer.y - plots_h, box.width - 12, plots_h)
    return {"rate": rate, "legend": legend, "sliders": sliders, "plots": plots, "footer": footer}


def draw_panel_frame(surface: pygame.Surface, box: pygame.Rect, font, title: str, footer: str) -> None:
    """The panel's background, its left edge, the title line and the footer line."""
    surface.fill((20, 23, 33), box)
    pygame.draw.line(surface, (60, 66, 84), box.topleft, box.bottomleft)
    surface.blit(font.render(title, True, (200, 205, 215)), (box.x + 8, box.y + 6))
    surface.blit(font.render(footer, True, (170, 175, 190)), (box.x + 8, box.bottom - FOOTER_HEIGHT + 4))


def layout_key(window, key: int) -> bool:
    """Tab (the panel), G (the plots) and H (the help) for a live or replay window (anything with
    ``panel_wanted``, ``plots``, ``show_help`` and ``relayout()``); True when ``key`` was one of them."""
    if key == pygame.K_TAB:
        window.panel_wanted = not window.panel_wanted
    elif key == pygame.K_g:
        window.plots.visible = not window.plots.visible
    elif key == pygame.K_h:
        window.show_help = not window.show_help
        return True
    else:
        return False
    window.relayout()
    return True
