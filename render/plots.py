"""Live plots: the run's metrics as small line charts in the side panel (NetLogo's plots).

``Plots`` keeps the metrics log's columns as growing numpy arrays (only rows it has not
seen are read each frame) and draws one ``LinePlot`` per series with pygame. A chart is
redrawn only when its data, its rectangle or the replay cursor changed; otherwise its
cached surface is blitted; new data alone redraw a chart at most every ``REDRAW_INTERVAL``
seconds (a chart a few hundred pixels wide gains at most a column in that time). Long histories are reduced to one min/max pair per pixel
column (the envelope of the line): the columns' bounds come from a binary search over the
sorted steps and one NaN-skipping min and max pass does the rest, so a frame costs two
vectorised passes over the points and O(width) drawing (``tools/bench_plots.py`` measures it).

    series             what it plots                         scenarios
    polarization       |mean unit(v)|, axis fixed to 0..1    boids
    mean_speed         mean |v|, world units per time unit   boids, circles
    mean_nn_distance   mean nearest-neighbor distance        boids
    n_modes            number of modes                       mean shift
    shift              log10 of the last step's shift        mean shift
    agents per group   one line per species, its colour      scenarios with species

    symbol -> variable
    (x0, x1), (lo, hi) -> x_range, y_range   the data box shown
    px = left + (x - x0) / (x1 - x0) * (w - 1),  py = bottom - 1 - (y - lo) / (hi - lo) * (h - 1)
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import pygame
from flock.formulations import converges, moves_boids

LINE_COLOR = (79, 195, 247)
PLOT_BG = (24, 28, 40)
PLOT_EDGE = (60, 66, 84)
CURSOR_COLOR = (255, 193, 7)
TITLE_COLOR = (200, 205, 215)
PLOT_HEIGHT = 46    # px of one chart at least (its title line included)
PLOT_MAX_HEIGHT = 110  # px: charts grow up to this when the panel has room
PLOT_GAP = 4        # px between charts
REDRAW_INTERVAL = 0.1  # s: the shortest time between two redraws of a chart for new data alone


@dataclass(frozen=True)
class SeriesSpec:
    """One chart: a metrics column, its title, a fixed y range (or None: the data's) and log10 or not."""

    column: str
    title: str
    y_range: tuple[float, float] | None = None
    log: bool = False
    from_zero: bool = False   # the axis starts at 0 (counts)


BOIDS_SERIES = (SeriesSpec("polarization", "polarization", (0.0, 1.0)),
                SeriesSpec("mean_speed", "mean speed"),
                SeriesSpec("mean_nn_distance", "nearest-neighbor distance"))
MEANSHIFT_SERIES = (SeriesSpec("n_modes", "modes"), SeriesSpec("shift", "shift (log10)", log=True))
OTHER_SERIES = (SeriesSpec("mean_speed", "mean speed"),)
COUNTS = "agents per group"


def series_for(scenario) -> tuple[SeriesSpec, ...]:
    """The charts a scenario's metrics give."""
    if converges(scenario):
        return MEANSHIFT_SERIES
    return BOIDS_SERIES if moves_boids(scenario) else OTHER_SERIES


class Growing:
    """A float64 array that grows by appending (capacity doubles), read as ``values``."""

    def __init__(self, capacity: int = 256):
        self._data = np.empty(capacity)
        self.n = 0

    def extend(self, values) -> None:
        values = np.asarray(values, dtype=np.float64)
        need = self.n + values.size
        if need > self._data.size:
            grown = np.empty(max(need, 2 * self._data.size))
            grown[:self.n] = self._data[:self.n]
            self._data = grown
        self._data[self.n:need] = values
        self.n = need

    @property
    def values(self) -> np.ndarray:
        return self._data[:self.n]

    def clear(self) -> None:
        self.n = 0


def _data_range(values: np.ndarray) -> tuple[float, float]:
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return 0.0, 1.0
    lo, hi = float(finite.min()), float(finite.max())
    if hi - lo < 1e-12 * max(1.0, abs(hi)):
        pad = max(0.5, 0.1 * abs(hi))
        return lo - pad, hi + pad
    pad = 0.05 * (hi - lo)
    return lo - pad, hi + pad


def column_extremes(x: np.ndarray, y: np.ndarray, x_range, width: int
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The min and max of ``y`` in each pixel column a chart ``width`` px wide shows.

    Column c holds the points with (x - x0) / (x1 - x0) * (width - 1) in [c - 1/2, c + 1/2)
    (points outside the range go to the first / last column). ``x`` is sorted, so the columns'
    first points come from ``searchsorted`` (O(width log M)) and one ``fmin``/``fmax``
    ``reduceat`` pass each does the rest; NaN values are skipped.

    Args:
        x: [M] nondecreasing float64 (steps). y: [M] float64.
    Returns:
        (columns [C] int64, ymin [C], ymax [C]) for the C columns holding a finite value.
    """
    if x.size == 0:
        empty = np.zeros(0)
        return empty.astype(np.int64), empty, empty
    x0, x1 = x_range
    dx = max(x1 - x0, 1e-12) / max(width - 1, 1)
    edges = x0 + (np.arange(1, width) - 0.5) * dx
    starts = np.concatenate(([0], np.searchsorted(x, edges, side="left")))
    cols = np.flatnonzero(np.diff(np.concatenate((starts, [x.size]))) > 0)
    first = starts[cols]
    with np.errstate(invalid="ignore"):
        ymin, ymax = np.fmin.reduceat(y, first), np.fmax.reduceat(y, first)
    keep = np.isfinite(ymin) & np.isfinite(ymax)
    return cols[keep], ymin[keep], ymax[keep]


def envelope(x: np.ndarray, y: np.ndarray, x_range, y_range, rect: pygame.Rect,
             extremes=None) -> list[tuple[float, float]]:
    """Polyline points (px) of ``y`` over ``x`` in ``rect``: the min and max of each pixel column.

    Args:
        x: [M] nondecreasing float64 (steps). y: [M] float64 values (non-finite ones are skipped).
        extremes: ``column_extremes(x, y, x_range, rect.width)`` when already computed.
    """
    cols, ymin, ymax = extremes if extremes is not None else column_extremes(x, y, x_range, rect.width)
    if cols.size == 0:
        return []
    lo, hi = y_range
    scale = (rect.height - 1) / max(hi - lo, 1e-300)
    bottom = rect.bottom - 1
    pts = np.empty((2 * cols.size, 2))
    pts[0::2, 0] = pts[1::2, 0] = rect.x + cols
    pts[0::2, 1] = np.clip(bottom - (ymin - lo) * scale, rect.y, bottom)
    pts[1::2, 1] = np.clip(bottom - (ymax - lo) * scale, rect.y, bottom)
    return pts.tolist()


def _extremes_range(extremes) -> tuple[float, float]:
    """``_data_range`` of the points behind a list of ``column_extremes`` results (O(columns))."""
    parts = [np.concatenate((lo, hi)) for _, lo, hi in extremes]
    return _data_range(np.concatenate(parts) if parts else np.zeros(0))


class LinePlot:
    """One chart in a rectangle: lines (one per series), a frame, its y range and a title.

    ``to_pixel(x, y)`` is where the last drawn chart put a data point.
    """

    def __init__(self, spec: SeriesSpec):
        self.spec = spec
        self.rect = pygame.Rect(0, 0, 0, 0)
        self.x_range = (0.0, 1.0)
        self.y_range = (0.0, 1.0)
        self._cache_key = None
        self._surface: pygame.Surface | None = None
        self._drawn_at = -math.inf
        self.redraw_interval = REDRAW_INTERVAL

    def to_pixel(self, x: float, y: float) -> tuple[int, int]:
        (x0, x1), (lo, hi) = self.x_range, self.y_range
        if self.spec.log:
            y = math.log10(y)
        r = self.rect
        px = r.x + round((x - x0) / max(x1 - x0, 1e-12) * (r.width - 1))
        py = r.bottom - 1 - round((y - lo) / max(hi - lo, 1e-300) * (r.height - 1))
        return px, py

    def draw(self, surface: pygame.Surface, rect: pygame.Rect, font, x: np.ndarray,
             lines: list[tuple[np.ndarray, tuple[int, int, int]]], *, x_range=None, cursor: float | None = None,
             version=None) -> None:
        """Draw the chart in ``rect`` (the title line above it is inside ``rect`` too).

        Args:
            x: [M] steps. lines: (values [M], colour) per line. x_range: (x0, x1) shown (None: x's).
            cursor: a step to mark with a vertical line (the replay's current frame).
            version: anything that changes when the data do (else the data are compared by length).
        """
        key = (tuple(rect), cursor, x_range, x.size, version)
        now = time.perf_counter()
        if self._surface is not None and self._cache_key is not None and (
                key == self._cache_key
                or (key[:3] == self._cache_key[:3] and now - self._drawn_at < self.redraw_interval)):
            surface.blit(self._surface, rect.topleft)
            return
        self._drawn_at = now
        chart = pygame.Surface(rect.size)
        chart.fill((0, 0, 0))
        title_h = font.get_linesize()
        box = pygame.Rect(0, title_h, rect.width, max(4, rect.height - title_h))
        chart.fill(PLOT_BG, box)
        pygame.draw.rect(chart, PLOT_EDGE, box, 1)
        inner = box.inflate(-4, -4)
        ys = [self._transform(v) for v, _ in lines]
        if x.size:
            self.x_range = tuple(float(v) for v in (x_range or (x[0], max(x[-1], x[0] + 1))))
        extremes = [column_extremes(x, y, self.x_range, inner.width) for y in ys]
        self.y_range = self.spec.y_range or _extremes_range(extremes)
        if self.spec.from_zero:
            self.y_range = (0.0, max(self.y_range[1], 1.0))
        self.rect = inner.move(rect.x, rect.y)
        for y, ext, (_, color) in zip(ys, extremes, lines):
            pts = envelope(x, y, self.x_range, self.y_range, inner, ext)
            if len(pts) >= 2:
                pygame.draw.lines(chart, color, False, pts, 1)
        if cursor is not None:
            cx = self.to_pixel(cursor, 10 ** self.y_range[0] if self.spec.log else self.y_range[0])[0] - rect.x
            pygame.draw.line(chart, CURSOR_COLOR, (cx, inner.y), (cx, inner.bottom - 1), 1)
        last = ""
        if lines and x.size:
            upto = x.size if cursor is None else int(np.searchsorted(x, cursor, side="right"))
            tails = [v[:upto][np.isfinite(v[:upto])] for v, _ in lines]   # the value at the cursor
            last = "  " + " / ".join(f"{t[-1]:.3g}" for t in tails if t.size)
        chart.blit(font.render(f"{self.spec.title}{last}", True, TITLE_COLOR), (2, 0))
        lo, hi = self.y_range
        if self.spec.log:
            span = f"{10 ** lo:.0e} .. {10 ** hi:.0e}"
        else:
            span = f"{lo:.3g} .. {hi:.3g}"
        label = font.render(span, True, (140, 146, 160))
        chart.blit(label, (rect.width - label.get_width() - 2, 0))
        self._surface, self._cache_key = chart, key
        surface.blit(chart, rect.topleft)

    def _transform(self, values: np.ndarray) -> np.ndarray:
        if not self.spec.log:
            return values
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(values > 0, np.log10(np.where(values > 0, values, 1.0)), np.nan)


class Plots:
    """The panel's charts for one run: fed from a ``MetricsLog`` (live) or a recording's columns (replay).

    Args:
        scenario: which series to chart (``series_for``).
        group_colors: one colour per group; with more than one group an "agents per group"
            chart is added, fed by ``add_counts``.
    """

    def __init__(self, scenario, group_colors: list[tuple[int, int, int]] | None = None):
        self.specs = list(series_for(scenario))
        self.group_colors = list(group_colors or [])
        self.visible = True
        self.plots = {s.column: LinePlot(s) for s in self.specs}
        self._steps = Growing()
        self._columns = {s.column: Growing() for s in self.specs}
        self._log = None
        self._seen = 0
        self._count_steps = Growing()
        self._counts = [Growing() for _ in self.group_colors]
        if len(self.group_colors) > 1:
            self.plots[COUNTS] = LinePlot(SeriesSpec(COUNTS, COUNTS, from_zero=True))
        self.x_range: tuple[float, float] | None = None

    # ------------------------------------------------------------ data in

    def clear(self) -> None:
        for g in (self._steps, self._count_steps, *self._columns.values(), *self._counts):
            g.clear()
        self._seen = 0

    def sync(self, log) -> int:
        """Read the rows of ``log`` (a ``MetricsLog``) not seen yet; returns how many were new.

        A different log object, or a shorter one (``sim.reset()``), starts the charts again.
        """
        rows = log.rows
        if log is not self._log or len(rows) < self._seen:
            self.clear()
            self._log = log
        new = rows[self._seen:]
        if new:
            self._steps.extend([r["step"] for r in new])
            for column, grow in self._columns.items():
                grow.extend([r.get(column, math.nan) for r in new])
            self._seen = len(rows)
        return len(new)

    def set_columns(self, metrics: dict[str, np.ndarray]) -> None:
        """All the data at once (a recording's metrics: "step" and one array per column)."""
        self.clear()
        steps = np.asarray(metrics.get("step", np.zeros(0)), dtype=np.float64)
        self._steps.extend(steps)
        for column, grow in self._columns.items():
            grow.extend(np.asarray(metrics[column], dtype=np.float64) if column in metrics
                        else np.full(steps.size, math.nan))
        if steps.size:
            self.x_range = (float(steps[0]), float(max(steps[-1], steps[0] + 1)))

    def add_counts(self, step: int, counts) -> None:
        """Agents per group at ``step`` (appended when the step moved on)."""
        if not self._counts:
            return
        steps = self._count_steps.values
        if steps.size and steps[-1] == step:
            return
        if steps.size and steps[-1] > step:  # a reset
            self._count_steps.clear()
            for g in self._counts:
                g.clear()
        self._count_steps.extend([step])
        for g, grow in enumerate(self._counts):
            grow.extend([counts[g] if g < len(counts) else 0])

    def column(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """(steps [M], values [M]) of a charted column."""
        return self._steps.values, self._columns[name].values

    # ------------------------------------------------------------ drawing

    def height_for(self, chart_height: int = PLOT_HEIGHT) -> int:
        """Pixels the charts need at ``chart_height`` px each (0 when hidden)."""
        return len(self.plots) * (chart_height + PLOT_GAP) if self.visible else 0

    def draw(self, surface: pygame.Surface, rect: pygame.Rect, font, cursor: float | None = None) -> None:
        """Every chart, stacked in ``rect`` (as many as fit, each up to ``PLOT_MAX_HEIGHT`` px tall)."""
        if not self.visible or not self.plots:
            return
        height = min(PLOT_MAX_HEIGHT, max(PLOT_HEIGHT, rect.height // len(self.plots) - PLOT_GAP))
        y = rect.y
        for name, plot in self.plots.items():
            if y + height > rect.bottom:
                break
            chart = pygame.Rect(rect.x, y, rect.width, height)
            if name == COUNTS:
                x = self._count_steps.values
                lines = [(g.values, c) for g, c in zip(self._counts, self.group_colors)]
                version = x.size
            else:
                x = self._steps.values
                lines = [(self._columns[name].values, LINE_COLOR)]
                version = self._seen
            plot.draw(surface, chart, font, x, lines, x_range=self.x_range, cursor=cursor, version=version)
            y += height + PLOT_GAP
