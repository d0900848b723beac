"""Results of a session: measures with units and z-scores, the DFNS profile, and exports.

:class:`ResultsPanel` shows a session file (``show_session``): who, which visit and how the
run ended; every measure with its value, unit, flags, DFNS z-score and loss/gain label
(measures of other protocols are listed with an empty z-score); and the DFNS profile plot
drawn in the widget by :func:`qst_station.profile_plot.draw_profile`. Without the lab's
reference table the shipped synthetic demo table is used and labelled as such.

Exports (BIDS, CSV, profile PNG) run on a worker thread; results come back through a Qt
signal. Dialogs are attributes (``ask_bids_options``, ``ask_folder``, ``ask_save_file``,
``show_error``) so callers and tests can replace them.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pyqtgraph as pg
from PySide6.QtCore import QBuffer, QByteArray, QIODevice, QObject, Qt, Signal
from PySide6.QtGui import QColor, QFont, QImage
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPushButton,
    QSpinBox,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from protocols.dfns import CONVENTIONS, normalized_unit
from protocols.reference import DEMO_TABLE, ReferenceLookupError, ReferenceTable, demo_table
from protocols.zscores import Profile, ZScore, z_score
from qst_station import session as session_file
from qst_station.export_bids import check_label, export_bids
from qst_station.export_csv import export_csv
from qst_station.profile_plot import draw_profile, profile_image
from qst_station.session import Session

DEMO_LABEL = "SYNTHETIC DEMO reference - not for clinical use"
NO_REFERENCE = "no reference"
COLUMNS = ("Measure", "Site", "Value", "Unit", "Flags", "z-score", "Loss / gain")
STATUS_COLORS = {"success": "#2e7d32", "recording": "#1f4e9a"}  # others: red
ABNORMAL_COLOR, NORMAL_COLOR, MUTED_COLOR = "#c62828", "#2e7d32", "#777777"
_UNITS = {"degC": "°C"}


@dataclass(frozen=True)
class MeasureRow:
    """One line of the results table."""

    name: str
    site: str
    value: float | None
    unit: str
    flags: tuple[str, ...]
    zscore: ZScore | None  # None: not a z-scored DFNS measure, or no reference
    z_text: str  # "+1.23", "no reference", "not z-scored", "" (other protocols)
    label: str  # loss, gain, normal or ""
    note: str = ""  # where the z-score comes from, or why there is none


@dataclass(frozen=True)
class BidsOptions:
    """The BIDS entities of an export (labels: letters and digits only)."""

    subject: str
    session: str
    task: str
    run: int | None = None


def score_results(results: Mapping[str, Mapping[str, Any]], table: ReferenceTable,
                  sex: str | None, age: float | None, default_site: str = "") -> list[MeasureRow]:
    """A row per result (``Session.results()``): DFNS measures z-scored against ``table`` at
    their own site, others listed without a z-score."""
    rows = []
    for key, r in results.items():
        name = str(r.get("measure", key))
        value = None if r.get("value") is None else float(r["value"])
        base = MeasureRow(name, str(r.get("site") or default_site), value, str(r.get("unit", "")),
                          tuple(str(f) for f in r.get("flags", []) or []), None, "", "")
        rows.append(_scored(base, str(r.get("transform", "none")), table, sex, age))
    return rows


def _scored(row: MeasureRow, transform: str, table: ReferenceTable, sex: str | None,
            age: float | None) -> MeasureRow:
    conv = CONVENTIONS.get(row.name)
    if conv is None:
        return row
    if not conv.z_scored:
        gain = row.name == "DMA" and (row.value or 0.0) > 0.0
        return replace(row, z_text="not z-scored", label="gain" if gain else "",
                       note=f"{row.name} is reported, not z-scored"
                       + (" (DMA > 0 is a mechanical gain)" if gain else ""))
    try:
        if row.value is None:
            raise ValueError("no value recorded")
        if normalized_unit(row.unit) != conv.unit:
            raise ValueError(f"{row.name} in {row.unit!r}: the reference is in {conv.unit!r}")
        if transform != conv.transform:
            raise ValueError(f"{row.name} has transform {transform!r}: DFNS uses "
                             f"{conv.transform!r}")
        if sex is None or age is None:
            raise ReferenceLookupError("z-scores need the participant's sex and age")
        ref = table.lookup(row.site, sex, age, row.name)
        score = z_score(row.name, row.value, ref, row.flags)
    except ReferenceLookupError as exc:
        return replace(row, z_text=NO_REFERENCE, note=str(exc))
    except ValueError as exc:
        return replace(row, z_text="not scored", note=str(exc))
    note = (f"{ref.source} ({ref.origin}: {ref.site}, {ref.sex}, {ref.band()} years; "
            f"mean {ref.mean:g}, sd {ref.sd:g}, {ref.transform})")
    return replace(row, zscore=score, z_text=f"{score.z:+.2f}", label=score.direction,
                   note=note)


def profile_of(rows: list[MeasureRow]) -> Profile | None:
    """The profile of the site with the most z-scores (first such site on a tie)."""
    sites: dict[str, str] = {}
    for row in rows:
        if row.zscore is not None:
            sites.setdefault(_site_key(row.site), row.site)
    if not sites:
        return None
    count = {k: sum(r.zscore is not None and _site_key(r.site) == k for r in rows) for k in sites}
    key = max(sites, key=lambda k: count[k])
    here = [r for r in rows if _site_key(r.site) == key]
    zscores = {r.name: r.zscore for r in here if r.zscore is not None}
    counts = {r.name: r.value for r in here if r.z_text == "not z-scored" and r.value is not None}
    return Profile(zscores, counts, sites[key])


def bids_defaults(session: Session) -> BidsOptions:
    """Subject from the participant code, session from the visit, task from the protocol."""
    protocol = next((p.protocol for p in session.parts if p.protocol), "")
    return BidsOptions(_alnum(session.participant), _alnum(session.visit), _alnum(protocol))


class _Bridge(QObject):
    """Carries a worker's outcome to the GUI thread (queued: the bridge lives there)."""

    done = Signal(str, object)  # kind, list[Path]
    failed = Signal(str, str)


class ResultsPanel(QWidget):
    """Measures, z-scores and profile of one session file, with BIDS/CSV/PNG exports."""

    export_finished = Signal(str, object)  # kind ("BIDS", "CSV", "PNG"), paths written
    export_failed = Signal(str, str)  # kind, one-line message

    def __init__(self, lab_reference: ReferenceTable | None = None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.lab_reference = lab_reference
        self.session: Session | None = None
        self.reference: ReferenceTable | None = None
        self.sex: str | None = None
        self.age: float | None = None
        self.rows: list[MeasureRow] = []
        self.profile: Profile | None = None
        self.last_written: list[Path] = []
        self._worker: threading.Thread | None = None
        # injectable dialogs (tests replace them; nothing modal opens then)
        self.ask_bids_options: Callable[[BidsOptions], BidsOptions | None] = self._ask_bids
        self.ask_folder: Callable[[str, str], str | None] = self._ask_folder
        self.ask_save_file: Callable[[str, str], str | None] = self._ask_save_file
        self.show_error: Callable[[str, str], None] = self._show_error
        self._bridge = _Bridge()
        self._bridge.done.connect(self._on_done)
        self._bridge.failed.connect(self._on_failed)
        self._build()

    # ------------------------------------------------------------------ layout

    def _build(self) -> None:
        layout = QVBoxLayout(self)
        self.header_label = _label(15)
        self.header_label.setTextFormat(Qt.TextFormat.RichText)
        self.reference_label = _label(13)
        self.reference_label.setWordWrap(True)
        layout.addWidget(self.header_label)
        layout.addWidget(self.reference_label)
        splitter = QSplitter(Qt.Orientation.Horizontal)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.verticalHeader().setVisible(False)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.table.setFont(QFont(self.font().family(), 11))
        splitter.addWidget(self.table)
        plot_side = QWidget()
        side = QVBoxLayout(plot_side)
        side.setContentsMargins(0, 0, 0, 0)
        self.profile_view = pg.GraphicsLayoutWidget()
        self.profile_view.setBackground("w")
        self.no_profile_label = _label(14, MUTED_COLOR)
        self.no_profile_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.no_profile_label.setText("No DFNS z-scores: no profile plot")
        side.addWidget(self.profile_view, stretch=1)
        side.addWidget(self.no_profile_label, stretch=1)
        splitter.addWidget(plot_side)
        splitter.setStretchFactor(0, 2)
        splitter.setStretchFactor(1, 3)
        layout.addWidget(splitter, stretch=1)
        buttons = QHBoxLayout()
        self.bids_button = QPushButton("Export BIDS…")
        self.csv_button = QPushButton("Export CSV…")
        self.png_button = QPushButton("Save profile PNG…")
        for button, slot in ((self.bids_button, self.export_bids),
                             (self.csv_button, self.export_csv),
                             (self.png_button, self.save_profile_png)):
            button.clicked.connect(slot)
            buttons.addWidget(button)
        self.status_label = _label(12)
        self.status_label.setWordWrap(True)
        self.status_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        buttons.addWidget(self.status_label, stretch=1)
        layout.addLayout(buttons)
        self._set_buttons()

    # ------------------------------------------------------------------ showing

    def show_session(self, path: str | os.PathLike[str], sex: str | None, age: int | None,
                     reference: ReferenceTable | None = None) -> bool:
        """Show the session at ``path``; z-scores against ``reference``, else the lab's table,
        else the synthetic demo table. A file that cannot be read is reported with
        ``show_error`` (the shown session stays) and gives False."""
        try:
            s = session_file.open(path)
        except (session_file.SessionReadError, OSError) as exc:
            self.show_error("Cannot open the session", " ".join(str(exc).split()))
            return False
        table = reference or self.lab_reference or demo_table()
        self.session, self.reference = s, table
        self.sex, self.age = sex, age
        self.rows = score_results(s.results(), table, sex, age, str(s.attrs.get("site", "")))
        self.profile = profile_of(self.rows)
        self._show_header()
        self._show_table()
        self._show_profile()
        self.status_label.setText("")
        self._set_buttons()
        return True

    @property
    def demo_reference(self) -> bool:
        """The z-scores come from the shipped synthetic table."""
        table = self.reference
        return table is not None and (table.name == DEMO_TABLE
                                      or any("SYNTHETIC" in r.source for r in table.rows))

    def _show_header(self) -> None:
        s = self.session
        assert s is not None
        color = STATUS_COLORS.get(s.status, ABNORMAL_COLOR)
        protocols = ", ".join(dict.fromkeys(p.protocol for p in s.parts if p.protocol)) or "-"
        reasons = "; ".join(f"part {p.number}: {p.reason}" for p in s.parts if p.reason)
        who = "" if self.sex is None and self.age is None else \
            f" &middot; {self.sex or 'sex -'}, {'-' if self.age is None else self.age} years"
        profile = f" &middot; profile <b>{self.profile.code}</b> ({self.profile.site})" \
            if self.profile else ""
        self.header_label.setText(
            f"Participant <b>{_html(s.participant or '-')}</b> &middot; visit "
            f"<b>{_html(s.visit or '-')}</b> &middot; {_html(protocols)} &middot; status "
            f"<b style='color:{color}'>{s.status.upper()}</b>"
            + (f" <span style='color:{color}'>({_html(reasons)})</span>" if reasons else "")
            + f"{who}{profile}<br><span style='color:{MUTED_COLOR};font-size:11px'>"
            f"{_html(str(s.path))}</span>")
        table = self.reference
        assert table is not None
        if self.demo_reference:
            text, style = DEMO_LABEL, f"color:white;background:{ABNORMAL_COLOR};" \
                                      "font-weight:bold;padding:4px;"
        else:
            text, style = f"Reference: {table.name}", f"color:{MUTED_COLOR};"
        if self.sex is None or self.age is None:
            text += " — z-scores need the participant's sex and age"
        self.reference_label.setText(text)
        self.reference_label.setStyleSheet(f"font-size:13px;{style}")

    def _show_table(self) -> None:
        self.table.setRowCount(len(self.rows))
        for i, row in enumerate(self.rows):
            value = "—" if row.value is None else _number(row.value)
            cells = (row.name, row.site, value, _UNITS.get(row.unit, row.unit),
                     ", ".join(row.flags), row.z_text, row.label)
            abnormal = row.label in ("loss", "gain")
            for j, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if j in (2, 5):
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight
                                          | Qt.AlignmentFlag.AlignVCenter)
                if j == 0 or (j in (5, 6) and abnormal):
                    font = item.font()
                    font.setBold(True)
                    item.setFont(font)
                if j in (5, 6):
                    color = ABNORMAL_COLOR if abnormal else (
                        NORMAL_COLOR if row.label == "normal" else MUTED_COLOR)
                    if j == 5 and row.zscore is not None and not abnormal:
                        color = "#141414"
                    item.setForeground(QColor(color))
                if j == 4 and row.flags:
                    item.setForeground(QColor("#b26a00"))
                conv = CONVENTIONS.get(row.name)
                tip = f"{conv.title}\n{row.note}" if conv and j == 0 else row.note
                item.setToolTip(tip.strip())
                self.table.setItem(i, j, item)
        self.table.resizeColumnsToContents()
        columns = sum(self.table.columnWidth(j) for j in range(len(COLUMNS)))
        scroll = self.table.verticalScrollBar().sizeHint().width()
        self.table.setMinimumWidth(columns + scroll + 2 * self.table.frameWidth() + 4)
        self.table.setCurrentCell(-1, -1)

    def _show_profile(self) -> None:
        self.profile_view.ci.clear()
        has = self.profile is not None
        self.profile_view.setVisible(has)
        self.no_profile_label.setVisible(not has)
        if self.profile is not None and self.session is not None:
            draw_profile(self.profile_view.ci, self.profile,
                         participant=self.session.participant)

    # ------------------------------------------------------------------ exports

    @property
    def busy(self) -> bool:
        """An export is running."""
        return self._worker is not None and self._worker.is_alive()

    def export_bids(self) -> None:
        """Ask for subject/session/task/run and a folder, then export on a worker thread."""
        s = self.session
        if s is None or self.busy:
            return
        options = self.ask_bids_options(bids_defaults(s))
        if options is None:
            return
        folder = self.ask_folder("BIDS dataset folder", str(s.path.parent))
        if not folder:
            return

        def job() -> list[Path]:
            subject = check_label("subject", options.subject)
            label = check_label("session", options.session)
            task = check_label("task", options.task)
            return export_bids(s, folder, subject, label, task, options.run)

        self._start("BIDS", job)

    def export_csv(self) -> None:
        """Ask for a folder, then write the CSV tables on a worker thread."""
        s = self.session
        if s is None or self.busy:
            return
        folder = self.ask_folder("Folder for the CSV tables", str(s.path.parent))
        if folder:
            self._start("CSV", lambda: export_csv(s, folder))

    def save_profile_png(self) -> None:
        """Ask for a file; the plot is rendered here, encoded and written on a worker thread."""
        s, profile = self.session, self.profile
        if s is None or profile is None or self.busy:
            return
        chosen = self.ask_save_file("Save the profile plot",
                                    str(s.path.with_name(f"{s.path.stem}_profile.png")))
        if not chosen:
            return
        out = Path(chosen) if Path(chosen).suffix else Path(chosen).with_suffix(".png")
        image = profile_image(profile, participant=s.participant)
        self._start("PNG", lambda: [_write_png(image, out)])

    def _start(self, kind: str, job: Callable[[], list[Path]]) -> None:
        self.status_label.setStyleSheet("font-size:12px;color:#222;")
        self.status_label.setText(f"{kind}: exporting…")

        def run() -> None:
            try:
                paths = [Path(p) for p in job()]
            except Exception as exc:  # noqa: BLE001 - every failure is shown, none is lost
                self._bridge.failed.emit(kind, _one_line(exc))
            else:
                self._bridge.done.emit(kind, paths)

        self._worker = threading.Thread(target=run, name=f"results-export-{kind}")
        self._worker.start()
        self._set_buttons()

    def _on_done(self, kind: str, paths: list[Path]) -> None:
        self._worker = None
        self.last_written = paths
        self.status_label.setStyleSheet(f"font-size:12px;color:{NORMAL_COLOR};")
        self.status_label.setText(_written(kind, paths))
        self.status_label.setToolTip("\n".join(map(str, paths)))
        self._set_buttons()
        self.export_finished.emit(kind, paths)

    def _on_failed(self, kind: str, message: str) -> None:
        self._worker = None
        self.status_label.setStyleSheet(f"font-size:12px;color:{ABNORMAL_COLOR};")
        self.status_label.setText(f"{kind} export failed: {message}")
        self._set_buttons()
        self.show_error(f"{kind} export failed", message)
        self.export_failed.emit(kind, message)

    def _set_buttons(self) -> None:
        idle = self.session is not None and not self.busy
        self.bids_button.setEnabled(idle)
        self.csv_button.setEnabled(idle)
        self.png_button.setEnabled(idle and self.profile is not None)
        self.png_button.setToolTip("" if self.profile is not None
                                   else "No DFNS z-scores: nothing to plot")

    # ------------------------------------------------------------------ dialogs

    def _ask_bids(self, defaults: BidsOptions) -> BidsOptions | None:
        return BidsDialog(defaults, self).ask()

    def _ask_folder(self, title: str, start: str) -> str | None:
        return QFileDialog.getExistingDirectory(self, title, start) or None

    def _ask_save_file(self, title: str, suggested: str) -> str | None:
        chosen, _ = QFileDialog.getSaveFileName(self, title, suggested, "PNG image (*.png)")
        return chosen or None

    def _show_error(self, title: str, message: str) -> None:
        QMessageBox.critical(self, title, message)


class BidsDialog(QDialog):
    """Subject, session, task and run of a BIDS export; OK only with valid labels."""

    def __init__(self, defaults: BidsOptions, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Export BIDS")
        form = QFormLayout(self)
        self.fields = {name: QLineEdit(getattr(defaults, name))
                       for name in ("subject", "session", "task")}
        for name, edit in self.fields.items():
            edit.textChanged.connect(self._check)
            form.addRow(f"{name.capitalize()} label", edit)
        self.run = QSpinBox()
        self.run.setRange(-1, 99)
        self.run.setSpecialValueText("none")
        self.run.setValue(-1 if defaults.run is None else defaults.run)
        form.addRow("Run", self.run)
        self.hint = QLabel("")
        self.hint.setStyleSheet(f"color:{ABNORMAL_COLOR};")
        form.addRow(self.hint)
        self.box = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok
                                    | QDialogButtonBox.StandardButton.Cancel)
        self.box.accepted.connect(self.accept)
        self.box.rejected.connect(self.reject)
        form.addRow(self.box)
        self._check()

    def options(self) -> BidsOptions:
        run = self.run.value()
        return BidsOptions(*(e.text().strip() for e in self.fields.values()),
                           None if run < 0 else run)

    def ask(self) -> BidsOptions | None:
        return self.options() if self.exec() == QDialog.DialogCode.Accepted else None

    def _check(self) -> None:
        bad = [n for n, e in self.fields.items() if not re.fullmatch(r"[A-Za-z0-9]+",
                                                                     e.text().strip())]
        self.hint.setText(f"{', '.join(bad)}: letters and digits only" if bad else "")
        self.box.button(QDialogButtonBox.StandardButton.Ok).setEnabled(not bad)


def sample_for_screenshot(path: str | os.PathLike[str]) -> ResultsPanel:
    """A panel for the docs: the session at ``path`` (written first as a sample session of a
    simulated participant if missing), female, 34, against the synthetic demo table."""
    path = Path(path)
    if not path.exists():
        write_sample_session(path)
    panel = ResultsPanel()
    panel.resize(1500, 640)
    panel.show_session(path, "female", 34)
    return panel


SAMPLE_MEASURES = (  # made-up values: normal against the demo table except VDT (a loss)
    ("CDT", 0.9, "degC", "log10"), ("WDT", 2.1, "degC", "log10"), ("TSL", 3.4, "degC", "log10"),
    ("PHS", 0.0, "count", "none"), ("CPT", 8.5, "degC", "none"), ("HPT", 40.9, "degC", "none"),
    ("MDT", 1.0, "mN", "log10"), ("MPT", 16.0, "mN", "log10"), ("MPS", 4.2, "NRS 0-100", "log10"),
    ("DMA", 0.0, "NRS 0-100", "none"), ("WUR", 2.6, "ratio", "log10"), ("VDT", 6.4, "/8", "none"),
    ("PPT", 260.0, "kPa", "log10"), ("TSP", 18.0, "NRS 0-100", "none"),
    ("T50", 46.2, "degC", "none"),
)


def write_sample_session(path: Path) -> Path:
    """A small session file with :data:`SAMPLE_MEASURES` at the hand dorsum (simulated)."""
    from protocols.base import Measure
    from qst_station.clock import SimulatedClock
    from qst_station.recording import Recording, SessionInfo
    from qst_station.session_writer import SessionWriter

    recording = Recording(SimulatedClock())
    writer = SessionWriter(path)
    recording.subscribe(writer)
    recording.start(SessionInfo("SIM001", "baseline", site="hand dorsum", operator="simulation",
                                protocol="dfns-battery", simulation={"sample": True}))
    for name, value, unit, transform in SAMPLE_MEASURES:
        site = "" if name in ("TSP", "T50") else "hand dorsum"
        recording.event("result", Measure(name, value, unit, transform, site=site).as_payload())
    recording.stop("success")
    if not writer.wait(10.0):
        raise OSError(f"{path}: the sample session was not written in time")
    return path


# ---------------------------------------------------------------------- helpers


def _write_png(image: QImage, out: Path) -> Path:
    """Encode ``image`` as PNG and write it (OSError as the file system reports it)."""
    data = QByteArray()
    buffer = QBuffer(data)
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    if not image.save(buffer, "PNG"):
        raise OSError(f"cannot encode the profile plot as PNG for {out}")
    buffer.close()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(bytes(data))
    return out


def _written(kind: str, paths: list[Path]) -> str:
    if not paths:
        return f"{kind}: nothing written"
    where = Path(os.path.commonpath([str(p.parent) for p in paths]))
    names = ", ".join(str(p.relative_to(where)) for p in paths)
    return f"{kind}: wrote {len(paths)} file{'s' * (len(paths) > 1)} in {where}: {names}"


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        where = f"cannot write {exc.filename}: " if exc.filename else ""
        return f"{where}{exc.strerror}"
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def _number(value: float) -> str:
    return f"{value:.3g}" if value and abs(value) < 0.01 else f"{value:.2f}"


def _alnum(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]", "", text)


def _site_key(site: str) -> str:
    return " ".join(site.split()).casefold()


def _html(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _label(size: int, color: str = "#222") -> QLabel:
    label = QLabel("")
    label.setStyleSheet(f"font-size:{size}px;color:{color};")
    return label
