"""Temperature scaling: fitted on one labelled set of verdicts, applied to another, through `judgelm calibrate`."""

import json

import numpy as np
import pytest

from judgelm import cli
from judgelm.scoring.calibration import fit_temperature, temper


def over_confident(n, seed):
    """Verdicts whose true label distribution is p but whose judge reports p sharpened by T = 0.5."""
    rng = np.random.default_rng(seed)
    p = rng.dirichlet([1.0, 1.0, 1.0], size=n)
    truth = np.array([rng.choice(3, p=row) for row in p]) - 1
    reported = temper(p, 0.5)
    return reported, reported.argmax(axis=1) - 1, truth


def test_temper_is_a_softmax_of_scaled_log_probabilities():
    p = np.array([[0.7, 0.2, 0.1]])
    np.testing.assert_allclose(temper(p, 1.0), p)
    np.testing.assert_allclose(temper(temper(p, 0.5), 2.0), p)
    np.testing.assert_allclose(temper(p, 1e6), [[1 / 3, 1 / 3, 1 / 3]], atol=1e-5)
    probs, _, truth = over_confident(4000, 0)
    assert fit_temperature(probs, truth) == pytest.approx(2.0, rel=0.1)  # undoes the sharpening


def test_calibrate_fits_on_one_benchmark_and_improves_another(tmp_path, capsys):
    rows = []
    for bench, seed in (("fit-bench", 1), ("other-bench", 2)):
        probs, labels, truth = over_confident(2000, seed)
        rows += [{"benchmark": bench, "p_label": dict(zip(("-1", "0", "1"), p.tolist())), "label": int(lab),
                  "truth": int(t)} for p, lab, t in zip(probs, labels, truth)]
    rows.append({"benchmark": "other-bench", "p_label": {"-1": 0.2, "0": 0.3, "1": 0.5}, "label": 1})  # no truth
    (tmp_path / "confidence.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert cli.main(["calibrate", str(tmp_path), str(tmp_path), "--fit-benchmark", "fit-bench",
                     "--apply-benchmark", "other-bench", "-o", str(tmp_path / "out")]) == 0
    out = json.loads((tmp_path / "out" / "calibration-transfer.json").read_text())
    assert out["fit_units"] == 2000 and out["units"] == 2000
    assert out["temperature"] == pytest.approx(2.0, rel=0.1)
    assert out["after"]["ece"] < 0.03 < 0.1 < out["before"]["ece"]
    assert out["before"]["accuracy"] == out["after"]["accuracy"]  # only confidence changes, never the verdict
    assert (tmp_path / "out" / "reliability-transfer.png").stat().st_size > 0
    assert "temperature 2." in capsys.readouterr().out
    assert cli.main(["calibrate", str(tmp_path), str(tmp_path), "--fit-benchmark", "absent"]) == 2
    assert capsys.readouterr().err.startswith("error: temperature scaling needs verdicts with confidence")
