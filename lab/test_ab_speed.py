"""lab/ab_speed.py --smoke on this repo's own tree (built in place) as both A and B."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(
    not any((ROOT / "rnnfast").glob("_kernels*.so")),
    reason="the script measures source trees built in place; this one is not (CI installs the "
    "package instead): python setup.py build_ext --inplace",
)
def test_smoke_one_tree(tmp_path):
    out = tmp_path / "ab.json"
    cmd = [sys.executable, str(ROOT / "lab" / "ab_speed.py"), "--smoke", "--threads", "1,2"]
    cmd += ["--trees", str(ROOT), str(ROOT), "--json", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "OPENBLAS_CORETYPE=" in proc.stdout
    result = json.loads(out.read_text())
    for label in ("A", "B"):
        for child in result["children"][label]:
            assert Path(child["rnnfast"]) == ROOT / "rnnfast" / "__init__.py"
            assert set(child["pools"]) == {"1", "2"}
    rows = result["rows"]
    assert {(r["config"], r["threads"], r["measure"]) for r in rows} == {
        (c, t, m)
        for c in ("mincharrnn", "smoke-lstm", "smoke-gru")
        for t in (1, 2)
        for m in ("train", "sample")
    }
    for r in rows:
        assert len(r["A"]) == len(r["B"]) == 2
        assert min(r["A"] + r["B"]) > 0
        assert r["ratio_min"] <= r["ratio_max"]
