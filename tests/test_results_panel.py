"""The results panel: measures with z-scores, the profile plot, and exports off the GUI thread."""

from __future__ import annotations

import csv
import threading
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QImage

from protocols.base import Measure
from protocols.files import parse_protocol
from protocols.reference import demo_table, parse_reference_csv
from protocols.zscores import z_score
from qst_station import session
from qst_station.clock import SimulatedClock
from qst_station.gui import results_panel
from qst_station.gui.results_panel import (
    COLUMNS,
    DEMO_LABEL,
    NO_REFERENCE,
    BidsDialog,
    BidsOptions,
    ResultsPanel,
    sample_for_screenshot,
)
from qst_station.profile_plot import save_profile_plot
from qst_station.recording import Recording, SessionInfo
from qst_station.session_writer import SessionWriter
from qst_station.simulated_run import run_simulated
from sim.participant import ParticipantModel
from tests.test_simulated_run import SHORT as SIMULATED_SHORT

SHORT = SIMULATED_SHORT.replace('site = "thenar"', 'site = "hand dorsum"')
SEX, AGE = "female", 34
TIMEOUT_MS = 10_000


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real session: CDT and HPT of a simulated participant at the hand dorsum."""
    path = tmp_path_factory.mktemp("results") / "sub-SIM042_ses-baseline-1.h5"
    model = ParticipantModel.model_validate({
        "participant": {"code": "SIM042", "reaction_time_s": 0.4, "reaction_time_sd_s": 0.0},
        "thresholds": {"CDT": 1.0, "HPT": 45.0}, "noise": {"CDT": 0.0, "HPT": 0.0}})
    run_simulated(parse_protocol(SHORT, "short.toml"), SimulatedClock(5.0), path, model, seed=5,
                  visit="baseline-1", progress=lambda _line: None)
    return path


@pytest.fixture
def other_protocols(tmp_path: Path) -> Path:
    """Measures of non-DFNS protocols, a count, and a CDT at a site the demo table lacks."""
    path = tmp_path / "other.h5"
    recording = Recording(SimulatedClock())
    writer = SessionWriter(path)
    recording.subscribe(writer)
    recording.start(SessionInfo("P-007", "v2", protocol="fmri-heat"))
    for m in (Measure("RATING-VAS50", 52.0, "VAS 0-100"), Measure("ONSET-ERROR", 3.2, "ms"),
              Measure("T50", 46.1, "degC"), Measure("TSP", 12.0, "NRS 0-100"),
              Measure("CPM", -8.5, "NRS 0-100", flags=("few-trials",)),
              Measure("PHS", 1.0, "count", site="cheek"),
              Measure("CDT", 1.2, "degC", "log10", site="cheek"),
              Measure("WDT", 0.0, "degC", "log10", site="hand dorsum")):
        recording.event("result", m.as_payload())
    recording.stop("success")
    assert writer.wait(5.0)
    return path


@pytest.fixture
def panel(qtbot) -> ResultsPanel:  # noqa: ANN001
    widget = ResultsPanel()
    qtbot.addWidget(widget)
    widget.errors = []  # type: ignore[attr-defined]
    widget.show_error = lambda title, message: widget.errors.append((title, message))
    widget.resize(1500, 640)
    widget.show()
    return widget


def cells(panel: ResultsPanel) -> dict[str, dict[str, str]]:
    """The table as {measure: {column: text}}."""
    out = {}
    for i in range(panel.table.rowCount()):
        row = {c: panel.table.item(i, j).text() for j, c in enumerate(COLUMNS)}
        out[row["Measure"]] = row
    return out


def test_measures_with_units_and_zscores_against_the_demo_table(qtbot, panel: ResultsPanel,  # noqa: ANN001
                                                                  recorded: Path) -> None:
    assert panel.show_session(recorded, SEX, AGE)
    table = cells(panel)
    assert list(table) == ["CDT", "HPT"]
    results = session.open(recorded).results()
    demo = demo_table()
    for name, row in table.items():
        value = results[name]["value"]
        expected = z_score(name, value, demo.lookup("hand dorsum", SEX, AGE, name))
        assert row["Site"] == "hand dorsum" and row["Unit"] == "°C"
        assert row["Value"] == f"{value:.2f}"
        assert row["z-score"] == f"{expected.z:+.2f}"
        assert row["Loss / gain"] == expected.direction
    # CDT 1.0 °C felt + 0.4 s x 1 °C/s -> about 1.4 °C; HPT 45.4 °C
    assert float(table["CDT"]["Value"]) == pytest.approx(1.4, abs=0.15)
    assert panel.reference_label.text().startswith(DEMO_LABEL) and panel.demo_reference
    header = panel.header_label.text()
    assert "SIM042" in header and "baseline-1" in header and "SUCCESS" in header
    assert "short-thermal" in header
    assert panel.profile is not None and set(panel.profile.zscores) == {"CDT", "HPT"}
    assert panel.profile_view.isVisible() and not panel.no_profile_label.isVisible()
    qtbot.wait(50)  # let the layout settle before the picture
    panel.grab().save("/tmp/results_panel.png")


def test_a_labs_table_without_a_measure_shows_no_reference(panel: ResultsPanel,
                                                            recorded: Path) -> None:
    lab = parse_reference_csv(
        "site,sex,age_min,age_max,measure,mean,sd,transform,source\n"
        "hand dorsum,any,20,60,CDT,0.0,0.25,log10,lab cohort 2024\n", "lab.csv")
    panel.show_session(recorded, SEX, AGE, reference=lab)
    table = cells(panel)
    cdt = session.open(recorded).results()["CDT"]["value"]
    assert table["CDT"]["z-score"] == f"{-np.log10(cdt) / 0.25:+.2f}"
    assert table["HPT"]["z-score"] == NO_REFERENCE and table["HPT"]["Loss / gain"] == ""
    assert "no HPT rows" in panel.table.item(1, 5).toolTip()
    assert panel.reference_label.text() == "Reference: lab.csv" and not panel.demo_reference
    assert set(panel.profile.zscores) == {"CDT"}
    lab_panel = ResultsPanel(lab_reference=lab)  # the configured table is the default
    lab_panel.show_session(recorded, SEX, AGE)
    assert lab_panel.reference is lab
    lab_panel.deleteLater()


def test_other_protocols_are_listed_without_zscores(panel: ResultsPanel,
                                                    other_protocols: Path) -> None:
    panel.show_session(other_protocols, "male", 50)
    table = cells(panel)
    assert list(table) == ["RATING-VAS50", "ONSET-ERROR", "T50", "TSP", "CPM", "PHS", "CDT",
                           "WDT"]
    for name in ("RATING-VAS50", "ONSET-ERROR", "T50", "TSP", "CPM"):
        assert table[name]["z-score"] == "" and table[name]["Loss / gain"] == ""
    assert table["CPM"]["Value"] == "-8.50" and table["CPM"]["Flags"] == "few-trials"
    assert table["ONSET-ERROR"]["Unit"] == "ms" and table["T50"]["Unit"] == "°C"
    assert table["PHS"]["z-score"] == "not z-scored"
    assert table["CDT"]["z-score"] == NO_REFERENCE  # the demo table has no cheek rows
    assert "sites with CDT: foot dorsum, hand dorsum" in panel.table.item(6, 5).toolTip()
    assert table["WDT"]["z-score"] == "not scored"  # log10 of 0 is an error, not a number
    assert "cannot take log10" in panel.table.item(7, 5).toolTip()
    assert panel.profile is None and not panel.png_button.isEnabled()
    assert panel.no_profile_label.isVisible() and not panel.profile_view.isVisible()


def test_without_sex_and_age_there_are_no_zscores(panel: ResultsPanel, recorded: Path) -> None:
    panel.show_session(recorded, None, None)
    assert {row["z-score"] for row in cells(panel).values()} == {NO_REFERENCE}
    assert "sex and age" in panel.reference_label.text()
    assert DEMO_LABEL in panel.reference_label.text()


def test_csv_and_png_exports_through_the_buttons(qtbot, panel: ResultsPanel, recorded: Path,  # noqa: ANN001
                                                 tmp_path: Path) -> None:
    panel.show_session(recorded, SEX, AGE)
    panel.ask_folder = lambda title, start: str(tmp_path / "tables")
    qtbot.mouseClick(panel.csv_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "wrote" in panel.status_label.text(), timeout=TIMEOUT_MS)
    assert panel.status_label.text().startswith(f"CSV: wrote 4 files in {tmp_path / 'tables'}")
    with (tmp_path / "tables" / "measures.csv").open(newline="") as f:
        assert [r["measure"] for r in csv.DictReader(f)] == ["CDT", "HPT"]
    assert panel.last_written == [tmp_path / "tables" / n for n in
                                  ("trials.csv", "measures.csv", "events.csv", "streams.csv")]

    panel.ask_save_file = lambda title, suggested: str(tmp_path / "plots" / "profile")
    qtbot.mouseClick(panel.png_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: panel.status_label.text().startswith("PNG: wrote"),
                    timeout=TIMEOUT_MS)
    png = tmp_path / "plots" / "profile.png"
    assert panel.last_written == [png] and str(png.name) in panel.status_label.text()
    image = QImage(str(png))
    assert (image.width(), image.height()) == (1000, 600)
    reference = QImage(str(save_profile_plot(panel.profile, tmp_path / "cli.png",
                                             participant="SIM042")))
    assert image.convertToFormat(QImage.Format.Format_RGB32) == \
        reference.convertToFormat(QImage.Format.Format_RGB32)  # the CLI's picture
    assert panel.errors == []


def test_bids_export_without_triggers_fails_with_a_message(qtbot, panel: ResultsPanel,  # noqa: ANN001
                                                           recorded: Path, tmp_path: Path) -> None:
    panel.show_session(recorded, SEX, AGE)
    rows_before, shown = list(panel.rows), panel.session
    asked: list[BidsOptions] = []
    panel.ask_bids_options = lambda defaults: asked.append(defaults) or defaults
    panel.ask_folder = lambda title, start: str(tmp_path / "bids")
    with qtbot.waitSignal(panel.export_failed, timeout=TIMEOUT_MS):
        qtbot.mouseClick(panel.bids_button, Qt.MouseButton.LeftButton)
    assert asked == [BidsOptions("SIM042", "baseline1", "shortthermal", None)]
    assert len(panel.errors) == 1
    title, message = panel.errors[0]
    assert title == "BIDS export failed" and "no scanner trigger events" in message
    assert "\n" not in message and message in panel.status_label.text()
    assert not (tmp_path / "bids").exists()  # nothing written when refused
    assert panel.session is shown and panel.rows == rows_before  # the session is untouched
    assert panel.bids_button.isEnabled() and not panel.busy


def test_a_write_error_is_one_line(qtbot, panel: ResultsPanel, recorded: Path,  # noqa: ANN001
                                   tmp_path: Path) -> None:
    panel.show_session(recorded, SEX, AGE)
    (tmp_path / "file").write_text("not a folder")
    panel.ask_folder = lambda title, start: str(tmp_path / "file" / "tables")
    qtbot.mouseClick(panel.csv_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: bool(panel.errors), timeout=TIMEOUT_MS)
    title, message = panel.errors[0]
    assert title == "CSV export failed"
    assert message.startswith("cannot write ") and "\n" not in message
    assert "Not a directory" in message or "File exists" in message


def test_exports_run_off_the_gui_thread(qtbot, panel: ResultsPanel, recorded: Path,  # noqa: ANN001
                                        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    panel.show_session(recorded, SEX, AGE)
    release, threads = threading.Event(), []

    def slow_export(s: session.Session, folder: str) -> list[Path]:
        threads.append(threading.current_thread())
        assert release.wait(10.0)
        return [Path(folder) / "trials.csv"]

    monkeypatch.setattr(results_panel, "export_csv", slow_export)
    panel.ask_folder = lambda title, start: str(tmp_path)
    qtbot.mouseClick(panel.csv_button, Qt.MouseButton.LeftButton)  # returns at once
    assert panel.busy and panel.status_label.text() == "CSV: exporting…"
    assert not panel.csv_button.isEnabled() and not panel.bids_button.isEnabled()
    ticks = []
    qtbot.waitUntil(lambda: ticks.append(1) or len(ticks) > 5)  # the event loop keeps running
    assert panel.busy
    release.set()
    qtbot.waitUntil(lambda: not panel.busy and panel.csv_button.isEnabled(), timeout=TIMEOUT_MS)
    assert threads and threads[0] is not threading.main_thread()
    assert panel.status_label.text() == f"CSV: wrote 1 file in {tmp_path}: trials.csv"


def test_cancelled_dialogs_do_nothing(panel: ResultsPanel, recorded: Path) -> None:
    panel.show_session(recorded, SEX, AGE)
    panel.ask_bids_options = lambda defaults: None
    panel.ask_folder = lambda title, start: None
    panel.ask_save_file = lambda title, suggested: None
    for button in (panel.bids_button, panel.csv_button, panel.png_button):
        button.click()
        assert not panel.busy and panel.status_label.text() == ""


def test_bids_dialog_accepts_labels_only(qtbot) -> None:  # noqa: ANN001
    dialog = BidsDialog(BidsOptions("SIM042", "baseline1", "heat"))
    qtbot.addWidget(dialog)
    ok = dialog.box.button(dialog.box.StandardButton.Ok)
    assert ok.isEnabled() and dialog.options() == BidsOptions("SIM042", "baseline1", "heat")
    dialog.fields["subject"].setText("SIM-042")
    assert not ok.isEnabled() and "subject" in dialog.hint.text()
    dialog.fields["subject"].setText("SIM042")
    dialog.run.setValue(2)
    assert ok.isEnabled() and dialog.options().run == 2


def test_an_unreadable_file_keeps_what_is_shown(panel: ResultsPanel, recorded: Path,
                                                tmp_path: Path) -> None:
    panel.show_session(recorded, SEX, AGE)
    assert not panel.show_session(tmp_path / "missing.h5", SEX, AGE)
    assert panel.errors and "no such file" in panel.errors[0][1]
    assert panel.session is not None and panel.session.path == recorded


def test_sample_for_screenshot(qtbot, tmp_path: Path) -> None:  # noqa: ANN001
    panel = sample_for_screenshot(tmp_path / "sample.h5")
    qtbot.addWidget(panel)
    panel.show()
    table = cells(panel)
    assert len(table) == len(results_panel.SAMPLE_MEASURES)
    assert table["VDT"]["Loss / gain"] == "loss" and table["TSP"]["z-score"] == ""
    assert panel.profile is not None and panel.profile.code == "L2G0"
    qtbot.wait(50)
    panel.grab().save("/tmp/results_panel_sample.png")
