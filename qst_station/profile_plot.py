"""A DFNS-style profile plot (PNG) of a :class:`protocols.zscores.Profile`.

z-scores per measure left to right in :data:`protocols.dfns.PROFILE_ORDER`, y from -4 to +4
(beyond that a triangle at the edge, the value written beyond it), the ±1.96 range of
healthy subjects as a grey band, gain of function up, loss down. Rendered with pyqtgraph's
ImageExporter; headless callers set ``QT_QPA_PLATFORM=offscreen`` before Qt is imported.
:func:`draw_profile` draws the same figure into an on-screen pyqtgraph layout and
:func:`profile_image` renders it to a ``QImage`` without running the event loop.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import pyqtgraph as pg
from pyqtgraph.exporters import ImageExporter
from PySide6.QtGui import QFont, QImage
from PySide6.QtWidgets import QApplication

from protocols.dfns import ABNORMAL_Z, PROFILE_ORDER
from protocols.zscores import MANY_ABNORMAL, Profile

Y_LIMIT = 4.0
_BLACK, _RED, _GREY = (20, 20, 20), (200, 30, 30), (90, 90, 90)


def save_profile_plot(profile: Profile, path: str | Path, *, participant: str = "",
                      site: str | None = None, width: int = 1000, height: int = 600,
                      order: Sequence[str] = PROFILE_ORDER) -> Path:
    """Write the profile as a ``width`` x ``height`` PNG at ``path`` and return the path."""
    app = QApplication.instance() or QApplication([])  # must outlive the export
    view = pg.GraphicsLayoutWidget()
    view.setBackground("w")
    view.resize(width, height)
    layout = view.ci
    draw_profile(layout, profile, participant=participant, site=site, order=order)
    layout.setGeometry(0, 0, width, height)  # a hidden view gets no resize event
    app.processEvents()  # let the layout place its items
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    exporter = ImageExporter(layout)
    exporter.parameters()["width"] = width
    exporter.parameters()["height"] = height
    exporter.parameters()["background"] = pg.mkColor("w")
    exporter.parameters()["antialias"] = True
    exporter.export(str(out))
    view.close()
    view.deleteLater()
    return out


def draw_profile(layout: pg.GraphicsLayout, profile: Profile, *, participant: str = "",
                 site: str | None = None, order: Sequence[str] = PROFILE_ORDER) -> pg.PlotItem:
    """Title, plot and footer of the profile into an empty ``layout`` (e.g. the ``ci`` of an
    on-screen ``pg.GraphicsLayoutWidget``); the plot."""
    layout.setContentsMargins(12, 8, 20, 8)
    layout.addLabel(_title(profile, participant, profile.site if site is None else site),
                    row=0, col=0, size="14pt", color=_BLACK)
    plot = layout.addPlot(row=1, col=0)
    _draw(plot, profile, list(order))
    layout.addLabel(_footer(profile), row=2, col=0, size="10pt", color=_GREY)
    return plot


def profile_image(profile: Profile, *, participant: str = "", site: str | None = None,
                  width: int = 1000, height: int = 600,
                  order: Sequence[str] = PROFILE_ORDER) -> QImage:
    """The PNG of :func:`save_profile_plot` as a ``QImage``, rendered without running the
    event loop (safe inside a GUI slot; GUI thread only). Save or encode it on any thread."""
    _app = QApplication.instance() or QApplication([])  # must outlive the export
    view = pg.GraphicsLayoutWidget()
    view.setBackground("w")
    view.resize(width, height)
    draw_profile(view.ci, profile, participant=participant, site=site, order=order)
    view.ci.setGeometry(0, 0, width, height)
    view.ci.layout.activate()  # place the items now instead of on a posted layout event
    exporter = ImageExporter(view.ci)
    exporter.parameters()["width"] = width
    exporter.parameters()["height"] = height
    exporter.parameters()["background"] = pg.mkColor("w")
    exporter.parameters()["antialias"] = True
    image = exporter.export(toBytes=True).copy()
    view.close()
    view.deleteLater()
    return image


def _draw(plot: pg.PlotItem, profile: Profile, order: list[str]) -> None:
    plot.hideButtons()
    plot.setMenuEnabled(False)
    plot.setMouseEnabled(x=False, y=False)
    plot.showGrid(x=False, y=True, alpha=0.15)
    band = pg.LinearRegionItem((-ABNORMAL_Z, ABNORMAL_Z), orientation="horizontal",
                               movable=False, brush=pg.mkBrush(200, 200, 200, 120),
                               pen=pg.mkPen(None))
    plot.addItem(band)
    plot.addItem(pg.InfiniteLine(0, angle=0, pen=pg.mkPen(_GREY, width=1)))
    font = QFont("DejaVu Sans", 10)
    for name, axis in (("bottom", plot.getAxis("bottom")), ("left", plot.getAxis("left"))):
        axis.setPen(pg.mkPen(_BLACK))
        axis.setTextPen(pg.mkPen(_BLACK))
        axis.setStyle(tickFont=font, tickTextOffset=6)
        if name == "bottom":
            axis.setTicks([list(enumerate(order)), []])
        else:
            axis.setTicks([[(v, f"{v:+d}" if v else "0") for v in range(-4, 5)], []])
    # rotated with the axis: reads bottom (loss) to top (gain)
    plot.setLabel("left", "loss of function  ◄  z-score  ►  gain of function",
                  color="#141414", size="11pt")
    plot.setXRange(-0.6, len(order) - 0.4, padding=0)
    plot.setYRange(-Y_LIMIT - 1.0, Y_LIMIT + 1.0, padding=0)
    xs, ys, spots = [], [], []
    for x, name in enumerate(order):
        score = profile.zscores.get(name)
        if score is None:
            xs.append(x)
            ys.append(math.nan)
            _text(plot, "n/a", x, 0.0, _GREY, anchor=(0.5, 0.5))
            continue
        y = max(-Y_LIMIT, min(Y_LIMIT, score.z))
        xs.append(x)
        ys.append(y)
        colour = _RED if score.abnormal else _BLACK
        symbol = "o" if y == score.z else ("t1" if score.z > 0 else "t")
        spots.append({"pos": (x, y), "symbol": symbol, "size": 13 if symbol == "o" else 16,
                      "brush": pg.mkBrush(colour), "pen": pg.mkPen(colour)})
        if y != score.z:
            up = score.z > 0  # the value beyond the triangle, outside the -4..+4 range
            _text(plot, f"{score.z:+.1f}", x, y + (0.25 if up else -0.25), _RED,
                  anchor=(0.5, 1.0 if up else 0.0))
    plot.addItem(pg.PlotDataItem(xs, ys, connect="finite", pen=pg.mkPen(_BLACK, width=2)))
    plot.addItem(pg.ScatterPlotItem(spots=spots))


def _text(plot: pg.PlotItem, text: str, x: float, y: float, colour: tuple[int, int, int],
          anchor: tuple[float, float]) -> None:
    item = pg.TextItem(text, color=colour, anchor=anchor)
    item.setFont(QFont("DejaVu Sans", 10))
    item.setPos(x, y)
    plot.addItem(item)


def _title(profile: Profile, participant: str, site: str) -> str:
    who = f"participant {participant}" if participant else "participant -"
    return f"DFNS profile: {who}, site {site or '-'}, {profile.code}"


def _footer(profile: Profile) -> str:
    parts = [f"{name} {value:g}" for name, value in profile.counts.items()]
    parts.append(f"abnormal (|z| &gt; {ABNORMAL_Z}): {len(profile.abnormal)}")
    sources = sorted({z.reference.source for z in profile.zscores.values()})
    text = " &middot; ".join(parts)
    if sources:
        text += f"<br>reference: {'; '.join(sources)}"
    if profile.flags:
        text += (f"<br><span style='color:#c81e1e'>{MANY_ABNORMAL} or more abnormal values: "
                 f"in a healthy subject this suggests a testing error</span>")
    return text

