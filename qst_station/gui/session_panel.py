"""Session setup form: participant code, visit, site, operator, sex and age, body sites.

Renders a :class:`~qst_station.session_setup.SessionSetup`: its problems in red under each
field (one line each), the session file the run will write (its UTC stamp ticks while idle),
and the recent participants of the sessions folder; picking one fills sex and age and
suggests the next visit of the schedule. The folder is scanned in a worker thread and the
result reaches the GUI thread through a Qt signal. ``python -m qst_station.gui.session_panel``
shows a sample.
"""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path

from PySide6.QtCore import QObject, QStringListModel, Qt, QTimer, Signal
from PySide6.QtGui import QFont
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QCompleter,
    QFormLayout,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from protocols.reference import ReferenceTable
from qst_station.config import StationConfig, default_config
from qst_station.session_setup import (
    BODY_SITES,
    SEXES,
    VISIT_NAMES,
    VISITS,
    RecentParticipant,
    SessionSetup,
    recent_participants,
    reference_band,
    suggest_visit,
)

PROBLEM_STYLE = "color:#c62828;"
HINT_STYLE = "color:#666;"
NOT_GIVEN = "not given"
SITE_COLUMNS = 3


class _Bridge(QObject):
    """Carries a scan's result from the worker thread to the GUI thread."""

    scanned = Signal(int, object)  # generation, list[RecentParticipant]


class SessionPanel(QWidget):
    """The session setup form; :meth:`setup` is what the operator entered."""

    setup_changed = Signal(object)  # SessionSetup

    def __init__(self, config: StationConfig | None = None, folder: str | Path = "sessions",
                 protocol: str = "", reference: ReferenceTable | None = None,
                 scan: bool = True) -> None:
        super().__init__()
        config = config or default_config()
        self.folder, self.protocol, self.reference = Path(folder), protocol, reference
        self.refuse_identifying_codes = config.station.refuse_identifying_codes
        self.recent: list[RecentParticipant] = []
        self.running = False
        self._picked = ""  # the code last filled in from the recent participants
        self._generation = 0
        self._bridge = _Bridge()
        self._bridge.scanned.connect(self._scanned)
        self._build(config.station.site)
        self._timer = QTimer(self)
        self._timer.timeout.connect(self._show_path)
        self._timer.start(1000)
        self._changed()
        if scan:
            self.refresh_recent()

    # -- layout ------------------------------------------------------------------------------
    def _build(self, site: str) -> None:
        form = QFormLayout(self)
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        self.notes: dict[str, QLabel] = {}
        self.recent_combo = QComboBox()
        self.recent_combo.setMinimumContentsLength(28)
        self.recent_combo.activated.connect(self._recent_activated)
        self.rescan_button = QPushButton("Rescan")
        self.rescan_button.clicked.connect(lambda: self.refresh_recent())
        self.recent_status = QLabel("")
        self.recent_status.setStyleSheet(HINT_STYLE)
        row = QHBoxLayout()
        row.addWidget(self.recent_combo, 1)
        row.addWidget(self.rescan_button)
        form.addRow("Recent", _stack(row, self.recent_status))
        self.code = QLineEdit()
        self.code.setPlaceholderText("pseudonymous code, e.g. LBP-023")
        self._codes = QStringListModel(self)
        self._completer = QCompleter(self._codes, self)
        self._completer.setCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self._completer.activated[str].connect(self._completed)
        self.code.setCompleter(self._completer)
        self.visit = QComboBox()
        self.visit.setEditable(True)
        for index, label in enumerate(VISITS):
            self.visit.addItem(label)
            self.visit.setItemData(index, VISIT_NAMES[label], Qt.ItemDataRole.ToolTipRole)
        self.visit.lineEdit().setPlaceholderText("or type a visit, e.g. unscheduled1")
        self.site = QLineEdit(site)
        self.site.setPlaceholderText("study site / station")
        self.operator = QLineEdit()
        self.operator.setPlaceholderText("operator's initials")
        self.sex = QComboBox()
        self.sex.addItems([NOT_GIVEN, *SEXES])
        self.age = QSpinBox()
        self.age.setRange(0, 120)
        self.age.setSpecialValueText(NOT_GIVEN)  # 0: no age given
        self.age.setSuffix(" years")
        self.age_band = QLabel("")
        self.age_band.setStyleSheet(HINT_STYLE)
        age_row = QHBoxLayout()
        age_row.addWidget(self.age)
        age_row.addWidget(self.age_band, 1)
        self.sites: dict[str, QCheckBox] = {}
        self._sites_box = QWidget()
        self._sites_grid = QGridLayout(self._sites_box)
        self._sites_grid.setContentsMargins(0, 0, 0, 0)
        self._sites_grid.setVerticalSpacing(2)
        for name in BODY_SITES:
            self._add_site(name, checked=False)
        self.new_site = QLineEdit()
        self.new_site.setPlaceholderText("another body site, then Enter")
        self.new_site.returnPressed.connect(self._new_site)
        for label, field, widget in (
                ("Participant", "participant", self.code), ("Visit", "visit", self.visit),
                ("Site", "site", self.site), ("Operator", "operator", self.operator),
                ("Sex", "sex", self.sex), ("Age", "age", age_row),
                ("Body sites", "body_sites", _stack(self._sites_box, self.new_site))):
            note = QLabel("")
            note.setWordWrap(True)
            note.setVisible(False)
            self.notes[field] = note
            form.addRow(label, _stack(widget, note))
        self.path_label = QLabel("")
        self.path_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.path_label.setFont(QFont("monospace"))
        self.path_label.setWordWrap(True)
        form.addRow("Session file", self.path_label)
        self.code.textChanged.connect(self._changed)
        self.visit.editTextChanged.connect(self._changed)
        self.site.textChanged.connect(self._changed)
        self.operator.textChanged.connect(self._changed)
        self.sex.currentIndexChanged.connect(self._changed)
        self.age.valueChanged.connect(self._changed)
        self.inputs: tuple[QWidget, ...] = (
            self.recent_combo, self.rescan_button, self.code, self.visit, self.site,
            self.operator, self.sex, self.age, self._sites_box, self.new_site)

    def _add_site(self, name: str, checked: bool) -> QCheckBox:
        box = QCheckBox(name)
        box.setChecked(checked)
        box.toggled.connect(self._changed)
        count = len(self.sites)
        self._sites_grid.addWidget(box, count // SITE_COLUMNS, count % SITE_COLUMNS)
        self.sites[name] = box
        return box

    def _new_site(self) -> None:
        name = self.new_site.text().strip()
        if name in self.sites:
            self.sites[name].setChecked(True)
        elif name:
            self._add_site(name, checked=True)
            self._changed()
        self.new_site.clear()

    # -- the model -----------------------------------------------------------------------
    def setup(self) -> SessionSetup:
        """What the form says now."""
        sex = self.sex.currentText()
        return SessionSetup(
            self.code.text(), self.visit.currentText(), self.site.text(), self.operator.text(),
            None if sex == NOT_GIVEN else sex, self.age.value() or None,
            tuple(name for name, box in self.sites.items() if box.isChecked()),
            self.refuse_identifying_codes)

    def set_setup(self, setup: SessionSetup) -> None:
        """Fill the form (body sites not in the list are added)."""
        self.code.setText(setup.participant)
        self.visit.setEditText(setup.visit)
        self.site.setText(setup.site)
        self.operator.setText(setup.operator)
        self.sex.setCurrentText(setup.sex or NOT_GIVEN)
        self.age.setValue(setup.age or 0)
        for name, box in self.sites.items():
            box.setChecked(name in setup.body_sites)
        for name in setup.body_sites:
            if name not in self.sites:
                self._add_site(name, checked=True)
        self._changed()

    def set_protocol(self, protocol: str) -> None:
        self.protocol = protocol
        self._show_path()

    def session_path(self, when: dt.datetime | None = None) -> Path:
        """The file a run started at ``when`` (now) writes."""
        return self.setup().session_path(self.folder, self.protocol or "PROTOCOL", when)

    def set_enabled_for_run(self, running: bool, path: str | Path | None = None) -> None:
        """Lock the form while a run records (showing its file ``path``), unlock after."""
        self.running = running
        for widget in self.inputs:
            widget.setEnabled(not running)
        if running and path is not None:
            self.path_label.setText(f"recording: {Path(path).resolve()}")
        else:
            self._show_path()

    def _changed(self) -> None:
        setup = self.setup()
        problems: dict[str, list[str]] = {}
        for field, message in setup.field_problems():
            problems.setdefault(field, []).append(message)
        hints = self._hints(setup)
        entry = self._recent_entry(setup.participant)
        self.recent_combo.setCurrentIndex(self.recent.index(entry) + 1 if entry else 0)
        if self._picked and self._picked != setup.participant:
            self._picked = ""
            self.recent_status.setText("")  # it was about the participant picked before
        for field, note in self.notes.items():
            lines = problems.get(field) or hints.get(field, [])
            note.setText("\n".join(lines))
            note.setToolTip(note.text())
            note.setStyleSheet(PROBLEM_STYLE if field in problems else HINT_STYLE)
            note.setVisible(bool(lines))
        band = None
        if setup.age is not None and "age" not in problems:
            band = (reference_band(self.reference, setup.age, setup.sex) if self.reference
                    else setup.age_band)
        self.age_band.setText(f"age band {band}" if band else "")
        self._show_path()
        self.setup_changed.emit(setup)

    def _hints(self, setup: SessionSetup) -> dict[str, list[str]]:
        hints: dict[str, list[str]] = {}
        typed = self.visit.currentText().strip()
        if typed and typed != setup.visit:
            hints["visit"] = [f"recorded as {setup.visit}"]
        entry = self._recent_entry(setup.participant)
        if entry:
            hints["participant"] = [f"last visit {entry.last_visit} on {entry.last_date}"]
            if entry.age is not None and entry.last_date != dt.date.today():
                hints["age"] = [f"{entry.age} at the {entry.last_visit} visit: check it"]
        if setup.sex is None or setup.age is None:
            hints.setdefault("age", []).append("sex and age are needed for z-scores")
        return hints

    def _show_path(self) -> None:
        if self.running:
            return
        setup = self.setup()
        if not setup.participant or not setup.visit:
            self.path_label.setText("— (enter the participant code and the visit)")
            return
        naming = {field for field, _ in setup.field_problems()} & {"participant", "visit"}
        if naming:
            self.path_label.setText("— (fix the participant code and the visit above)")
            return
        path = self.session_path()
        text = str(path.parent.resolve() / path.name)
        if setup.problems():
            text += "\n(not yet: fix the problems above)"
        self.path_label.setText(text)

    # -- recent participants -------------------------------------------------------------------
    def refresh_recent(self, wait: bool = False) -> None:
        """Scan the folder in a worker thread (``wait``: in this thread, for tests)."""
        self._generation += 1
        generation, folder = self._generation, self.folder
        self.recent_status.setText(f"reading {folder} …")

        def scan() -> None:
            try:
                found = recent_participants(folder)
            except Exception as error:  # noqa: BLE001 - shown, never raised into Qt
                found = error
            self._bridge.scanned.emit(generation, found)

        if wait:
            scan()
        else:
            threading.Thread(target=scan, name="recent-participants", daemon=True).start()

    def _scanned(self, generation: int, found: object) -> None:
        if generation != self._generation:
            return  # a newer scan is under way
        if isinstance(found, Exception):
            self.recent_status.setText(f"cannot read {self.folder}: {found}")
            return
        self.set_recent(found)  # type: ignore[arg-type]

    def set_recent(self, entries: list[RecentParticipant]) -> None:
        """Offer ``entries`` (newest first) in the Recent list and the code completer."""
        self.recent = list(entries)
        self.recent_combo.clear()
        self.recent_combo.addItem(f"new participant ({len(entries)} recent)")
        for entry in entries:
            self.recent_combo.addItem(_describe(entry), entry)
        self._codes.setStringList([e.code for e in entries])
        self.recent_status.setText("" if entries else f"no sessions in {self.folder} yet")
        self._changed()

    def _recent_entry(self, code: str) -> RecentParticipant | None:
        return next((e for e in self.recent if e.code == code), None)

    def pick_recent(self, code: str) -> bool:
        """Fill the form from recent participant ``code``; False if there is none."""
        entry = self._recent_entry(code)
        if entry is None:
            return False
        self.code.setText(entry.code)
        self.sex.setCurrentText(entry.sex or NOT_GIVEN)
        self.age.setValue(entry.age or 0)
        suggested = suggest_visit(entry)
        if suggested:
            self.visit.setEditText(suggested)
        if suggested == entry.last_visit:
            status = f"{entry.code}: visit {suggested} again (seen today)"
        elif suggested:
            status = f"{entry.code}: visit {suggested} suggested (after {entry.last_visit})"
        else:
            status = f"{entry.code}: schedule complete; choose the visit"
        self.recent_status.setText(status)
        self._picked = entry.code
        return True

    def _recent_activated(self, index: int) -> None:
        entry = self.recent_combo.itemData(index)
        if isinstance(entry, RecentParticipant):
            self.pick_recent(entry.code)

    def _completed(self, code: str) -> None:
        self.pick_recent(code)


def _describe(entry: RecentParticipant) -> str:
    who = ", ".join(x for x in (entry.sex, f"{entry.age} y" if entry.age else "") if x)
    return f"{entry.code}  ·  {entry.last_visit}, {entry.last_date}" + (
        f"  ·  {who}" if who else "")


def _stack(top: QWidget | QHBoxLayout, below: QWidget) -> QWidget:
    box = QWidget()
    column = QVBoxLayout(box)
    column.setContentsMargins(0, 0, 0, 0)
    column.setSpacing(2)
    if isinstance(top, QWidget):
        column.addWidget(top)
    else:
        column.addLayout(top)
    column.addWidget(below)
    return box


def sample_for_screenshot() -> SessionPanel:
    """A panel with three recent participants, one of them picked."""
    config = StationConfig.model_validate({"station": {"site": "Aarhus",
                                                       "refuse_identifying_codes": True}})
    panel = SessionPanel(config, folder="sessions", protocol="ppt", scan=False)
    now = dt.datetime.now(dt.UTC)
    panel.set_recent([
        RecentParticipant("LBP-023", "month1", now - dt.timedelta(days=62), "female", 41,
                          "Aarhus", ("month1", "baseline")),
        RecentParticipant("LBP-017", "month3", now - dt.timedelta(days=95), "male", 58,
                          "Aarhus", ("month3", "month1", "baseline")),
        RecentParticipant("LBP-031", "baseline", now - dt.timedelta(days=30), None, None,
                          "Aarhus", ("baseline",))])
    panel.pick_recent("LBP-023")
    panel.operator.setText("MK")
    for name in ("thenar", "lumbar painful site", "contralateral lumbar"):
        panel.sites[name].setChecked(True)
    panel.resize(640, panel.sizeHint().height())
    return panel


def main() -> int:
    import sys

    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication(sys.argv)
    panel = sample_for_screenshot()
    panel.setup_changed.connect(lambda s: print(s.problems() or s))
    panel.show()
    return app.exec()


if __name__ == "__main__":
    raise SystemExit(main())
