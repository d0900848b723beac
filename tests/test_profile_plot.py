"""The DFNS profile PNG: written at the requested size, not blank, clipped and missing values."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtGui import QImage  # noqa: E402

from protocols.reference import ReferenceRow  # noqa: E402
from protocols.zscores import Profile, ZScore  # noqa: E402
from qst_station.profile_plot import save_profile_plot  # noqa: E402


def make_profile(**z: float) -> Profile:
    scores = {m: ZScore(m, v, v, v, ReferenceRow("hand", "any", 18, 80, m, 0.0, 1.0, "none",
                                                  "SYNTHETIC DEMO DATA - not for clinical use"))
              for m, v in z.items()}
    return Profile(scores, {"PHS": 1.0, "DMA": 0.0}, site="hand")


def pixels(path: Path) -> np.ndarray:
    image = QImage(str(path)).convertToFormat(QImage.Format.Format_Grayscale8)
    assert not image.isNull()
    width, height, stride = image.width(), image.height(), image.bytesPerLine()
    data = np.frombuffer(image.constBits(), np.uint8, count=stride * height)
    return data.reshape(height, stride)[:, :width].copy()


@pytest.mark.parametrize(("width", "height"), [(1000, 600), (640, 400)])
def test_png_has_the_requested_size_and_is_not_blank(tmp_path: Path, width: int,
                                                     height: int) -> None:
    profile = make_profile(CDT=1.2, WDT=-2.6, TSL=-0.3, CPT=1.9, HPT=1.2, PPT=2.7, MPT=0.4,
                           MPS=0.6, WUR=0.0, MDT=-6.0, VDT=-0.7)
    out = save_profile_plot(profile, tmp_path / "sub" / "profile.png", participant="P001",
                            width=width, height=height)
    assert out == tmp_path / "sub" / "profile.png" and out.stat().st_size > 0
    gray = pixels(out)
    assert gray.shape == (height, width)
    assert gray.std() > 10  # text, band and points on a white background
    assert np.median(gray) > 200  # the background is white
    assert (gray < 100).mean() > 0.005  # dark ink: axes, labels, points


def test_flagged_profile_with_missing_and_clipped_values(tmp_path: Path) -> None:
    profile = make_profile(CDT=6.5, WDT=6.6, TSL=5.7, CPT=3.3, HPT=-9.0, MDT=-2.7)
    assert profile.flags
    out = save_profile_plot(profile, tmp_path / "flagged.png", site="foot", width=800,
                            height=500)
    gray = pixels(out)
    assert gray.shape == (500, 800) and gray.std() > 10


def test_an_empty_profile_still_draws_the_frame(tmp_path: Path) -> None:
    out = save_profile_plot(Profile({}), tmp_path / "empty.png", width=500, height=300)
    gray = pixels(out)
    assert gray.shape == (300, 500) and gray.std() > 5
