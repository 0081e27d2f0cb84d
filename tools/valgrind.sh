#!/usr/bin/env bash
# valgrind memcheck over training and sampling on the C backend: both cells, both dtypes, batch 1
# (BLAS gemv) and batch 3 (the packed per-step kernel where the CPU has AVX-512).  Run from a
# checkout with the extension built in place:
#     python setup.py -q build_ext --inplace && bash tools/valgrind.sh
# Every error is kept in the log; the script fails if any error is located in rnnfast's extension
# (CPython and ld.so report their own, which are not ours to fix).
set -euo pipefail
cd "$(dirname "$0")/.."
log=$(mktemp -d)/memcheck.log
PYTHONMALLOC=malloc PYTHONPATH="$PWD" valgrind --tool=memcheck --track-origins=yes \
    --num-callers=40 --log-file="$log" python - <<'PY'
import numpy as np

import rnnfast

vocab = rnnfast.Vocab.from_text("abcdefghijklmnopq")
for cell in ("rnn", "lstm"):
    for dtype in (np.float32, np.float64):
        model = rnnfast.CharLM(vocab, cell=cell, hidden_size=21, num_layers=2, dtype=dtype, seed=0)
        opt = rnnfast.Adam(model, lr=1e-2)
        rng = np.random.default_rng(0)
        for batch in (1, 3):
            state = None
            for _ in range(2):
                x, y = rng.integers(0, 17, (2, 6, batch))
                _, state = model.train_step(x, y, opt, state)
        model.sample(40, temperature=0.9, top_k=5, seed=1)
        model.sample(40, seed=2, num_samples=3)
print("workload done")
PY
python - "$log" <<'PY'
import re
import sys

text = open(sys.argv[1]).read()
kinds = r"==\d+== (Invalid|Conditional|Use of|Syscall|Mismatched|Source and)"
records = [r for r in re.split(r"\n==\d+== \n", text) if re.search(kinds, r)]
# An error located in the extension: its "at" frame (with the frames inlined at that address)
# in the shared object, the cythonized bridge or a C source.  CPython called from the bridge's
# glue (an import, a decref) is not.
in_rnnfast = (
    r"_kernels\.cpython|_kernels\.c:\d|_tmpl\.h:\d"
    r"|\((blas|linear|loss|optim|recurrent|sample)\.c:\d"
)


def located_in_rnnfast(record):
    frames = re.findall(r"(?:at|by) (0x[0-9A-F]+): (.*)", record)
    return any(re.search(in_rnnfast, f) for a, f in frames if a == frames[0][0])


ours = [r for r in records if located_in_rnnfast(r)]
summary = re.findall(r"ERROR SUMMARY: .*", text)
print(f"valgrind log: {sys.argv[1]}")
print(summary[-1] if summary else "no summary")
print(f"{len(records)} error contexts, {len(ours)} of them in rnnfast's code")
for r in ours:
    print(r)
sys.exit(1 if ours else 0)
PY
