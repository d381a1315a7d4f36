"""benchmarks/gpu_check.py on the CPU in small mode: every check it makes on a GPU runs here and passes."""
import os
import re
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "gpu_check.py"


def test_gpu_check_runs_on_the_cpu_in_small_mode():
    r = subprocess.run([sys.executable, str(SCRIPT), "--device", "cpu"], capture_output=True, text=True,
                       env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    header, *lines = r.stdout.split("\n\n")[-2].splitlines()
    assert re.split(r"\s{2,}", header) == ["check", "model", "variant", "result", "seconds", "detail"]
    rows = {tuple(cells[:3]): (cells[3], cells[5]) for cells in (re.split(r"\s{2,}", line) for line in lines)}
    assert rows[("pipeline", "lenet5", "plain")] == ("ok", rows[("pipeline", "lenet5", "plain")][1])
    assert "pruned weights zero, masks kept" in rows[("pipeline", "lenet5", "plain")][1]
    assert rows[("pipeline", "lenet5", "--amp --channels-last")] == ("n/a", "CUDA only")
    assert rows[("--deterministic repeat", "lenet5", "plain")] == (
        "ok", "two runs from scratch: same numbers, bit-identical weights, deterministic algorithms on")
    for model in ("vgg16", "resnet18"):
        result, detail = rows[("epoch time", model, "plain")]
        assert result == "ok" and detail.endswith("s per paper-preset epoch (45,000 images; measured on 64, scaled)")
    assert r.stdout.strip().splitlines()[-1].startswith("5 rows, 0 failed")
    bad = subprocess.run([sys.executable, str(SCRIPT), "--device", "tpu"], capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and bad.stderr.strip() == "error: unknown device 'tpu'; valid: cuda, cpu"
