"""Session setup panel: live file path, inline problems, recent participants, run lock."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import h5py
from pytestqt.qtbot import QtBot

from qst_station.config import StationConfig
from qst_station.gui.session_panel import (
    PROBLEM_STYLE,
    SessionPanel,
    sample_for_screenshot,
)
from qst_station.session_setup import SessionSetup


def _panel(qtbot: QtBot, folder: Path, refuse: bool = False, scan: bool = False
           ) -> SessionPanel:
    config = StationConfig.model_validate(
        {"station": {"site": "Aarhus", "refuse_identifying_codes": refuse}})
    panel = SessionPanel(config, folder=folder, protocol="ppt", scan=scan)
    qtbot.addWidget(panel)
    panel.show()
    return panel


def _session_file(path: Path, code: str, visit: str, days_ago: int, **attrs: object) -> None:
    started = dt.datetime.now(dt.UTC) - dt.timedelta(days=days_ago)
    with h5py.File(path, "w") as handle:
        handle.attrs.update({"format": "qst-station-session", "format_version": "1.0",
                             "participant": code, "visit": visit, "site": "Aarhus", **attrs})
        handle.create_group("parts/001").attrs.update(
            {"started_utc": started.isoformat(timespec="milliseconds"), "simulation": ""})


def test_typing_a_code_updates_the_path(qtbot: QtBot, tmp_path: Path) -> None:
    panel = _panel(qtbot, tmp_path)
    assert panel.path_label.text().startswith("—")
    assert panel.notes["participant"].isVisible()  # empty code: the problem shows
    emitted: list[SessionSetup] = []
    panel.setup_changed.connect(emitted.append)
    qtbot.keyClicks(panel.code, "P012")
    assert [s.participant for s in emitted] == ["P", "P0", "P01", "P012"]
    text = panel.path_label.text()
    assert text.startswith(str(tmp_path.resolve() / "sub-P012_ses-baseline_ppt_"))
    assert text.endswith("Z.h5")
    assert not panel.notes["participant"].isVisible()
    panel.visit.setEditText("3 months")
    assert "_ses-month3_ppt_" in panel.path_label.text()
    assert panel.notes["visit"].text() == "recorded as month3"
    assert panel.setup().site == "Aarhus"  # the station's site
    panel.set_protocol("cpm")
    assert "_ses-month3_cpm_" in panel.path_label.text()
    assert panel.session_path(dt.datetime(2024, 5, 1, tzinfo=dt.UTC)) == \
        tmp_path / "sub-P012_ses-month3_cpm_20240501T000000Z.h5"


def test_identifying_code_shows_the_problem_when_configured(qtbot: QtBot,
                                                            tmp_path: Path) -> None:
    strict = _panel(qtbot, tmp_path, refuse=True)
    qtbot.keyClicks(strict.code, "JaneDoe")
    note = strict.notes["participant"]
    assert note.isVisible() and "pseudonymous" in note.text()
    assert note.styleSheet() == PROBLEM_STYLE
    assert strict.path_label.text().startswith("—")  # no file named after it
    assert strict.setup().problems()[0].startswith("participant: 'JaneDoe'")
    relaxed = _panel(qtbot, tmp_path, refuse=False)
    qtbot.keyClicks(relaxed.code, "JaneDoe")
    assert not relaxed.notes["participant"].isVisible()
    strict.age.setValue(115)
    assert "out of range" in strict.notes["age"].text()
    assert strict.notes["age"].styleSheet() == PROBLEM_STYLE


def test_picking_a_recent_participant_fills_the_fields(qtbot: QtBot, tmp_path: Path) -> None:
    _session_file(tmp_path / "a.h5", "LBP-023", "baseline", 40, sex="female", age=41)
    _session_file(tmp_path / "b.h5", "LBP-023", "month1", 10)
    _session_file(tmp_path / "c.h5", "LBP-017", "month3", 5, sex="male", age=58)
    (tmp_path / "broken.h5").write_text("not a session")
    panel = _panel(qtbot, tmp_path, scan=True)  # scanned in a worker thread
    qtbot.waitUntil(lambda: panel.recent_combo.count() == 3, timeout=5000)
    assert [e.code for e in panel.recent] == ["LBP-017", "LBP-023"]
    index = panel.recent_combo.findData(panel.recent[1])
    panel.recent_combo.setCurrentIndex(index)
    panel.recent_combo.activated.emit(index)  # as a click on the item does
    setup = panel.setup()
    assert (setup.participant, setup.sex, setup.age, setup.visit) == \
        ("LBP-023", "female", 41, "month3")  # after baseline and month1
    assert "month3 suggested" in panel.recent_status.text()
    assert "check it" in panel.notes["age"].text()
    assert panel.pick_recent("LBP-017")
    assert (panel.setup().sex, panel.setup().age, panel.setup().visit) == ("male", 58, "month6")
    assert panel.recent_combo.currentIndex() == 1
    panel.code.setText("LBP-099")  # a new participant
    assert panel.recent_combo.currentIndex() == 0 and panel.recent_status.text() == ""
    assert not panel.pick_recent("LBP-099")


def test_body_sites_and_set_setup(qtbot: QtBot, tmp_path: Path) -> None:
    panel = _panel(qtbot, tmp_path)
    panel.sites["thenar"].setChecked(True)
    panel.new_site.setText("left trapezius")
    qtbot.keyClick(panel.new_site, "\r")
    assert panel.setup().body_sites == ("thenar", "left trapezius")
    wanted = SessionSetup("P7", "month12", "Odense", "KL", "male", 30, ("cheek", "neck"))
    panel.set_setup(wanted)
    assert panel.setup() == wanted


def test_locked_while_a_run_records(qtbot: QtBot, tmp_path: Path) -> None:
    panel = _panel(qtbot, tmp_path)
    qtbot.keyClicks(panel.code, "P001")
    panel.set_enabled_for_run(True, tmp_path / "sub-P001_x.h5")
    assert not any(w.isEnabled() for w in panel.inputs)
    assert panel.path_label.text() == f"recording: {(tmp_path / 'sub-P001_x.h5').resolve()}"
    panel._show_path()  # the clock tick leaves it alone while running
    assert panel.path_label.text().startswith("recording:")
    panel.set_enabled_for_run(False)
    assert all(w.isEnabled() for w in panel.inputs)
    assert "sub-P001_ses-baseline_ppt_" in panel.path_label.text()


def test_sample_for_screenshot(qtbot: QtBot) -> None:
    panel = sample_for_screenshot()
    qtbot.addWidget(panel)
    panel.show()
    assert panel.setup().problems() == []
    assert panel.setup().visit == "month3"
    assert panel.grab().save("/tmp/session_panel.png")
