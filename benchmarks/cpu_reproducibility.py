"""Which CPU settings make tiny training bit-identical across x86 instruction sets, and what they cost.

Each setting runs in a fresh process (the libraries read these variables once, at start): a short training of
``duda-tiny`` and ``clip-diff-tiny`` on the first training pairs of ``shapes``, then a digest of every weight and the
greedy captions of a few val pairs. A setting is bit-stable when the digests under an emulated older ISA
(``ATEN_CPU_CAPABILITY``, ``ONEDNN_MAX_CPU_ISA``, ``MKL_CBWR`` / ``MKL_ENABLE_INSTRUCTIONS`` lowered) equal the ones
on the native ISA.

    .venv/bin/python benchmarks/cpu_reproducibility.py            # all settings (about 10 minutes on 2 busy cores)
    .venv/bin/python benchmarks/cpu_reproducibility.py --one duda-tiny   # one training, prints its digest (JSON)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TRAIN_PAIRS = 96
VAL_PAIRS = 16
OVERRIDES = {
    "duda-tiny": {"epochs": 2, "val_max_examples": VAL_PAIRS},
    "clip-diff-tiny": {"stage2": {"epochs": 1, "max_steps": 6, "val_max_pairs": VAL_PAIRS}},
}

# name -> environment; "native" first. Emulated ISAs are lower than this machine's, never higher.
SETTINGS: dict[str, dict[str, str]] = {
    "native": {},
    "1 thread": {"OMP_NUM_THREADS": "1"},
    "aten=default": {"ATEN_CPU_CAPABILITY": "default"},
    "onednn=SSE41": {"ONEDNN_MAX_CPU_ISA": "SSE41"},
    "mkl=SSE4_2": {"MKL_CBWR": "SSE4_2", "MKL_ENABLE_INSTRUCTIONS": "SSE4_2"},
    "all lowered": {"ATEN_CPU_CAPABILITY": "default", "ONEDNN_MAX_CPU_ISA": "SSE41", "MKL_CBWR": "SSE4_2",
                    "MKL_ENABLE_INSTRUCTIONS": "SSE4_2"},
}


def one(model_name: str) -> dict:
    """Train `model_name` briefly in this process; digest of the weights and captions, and the seconds it took."""
    import torch

    from idcbench.captioner import FitContext
    from idcbench.factory import create_model
    from idcbench.data import load_dataset
    from idcbench.rng import seed_everything

    ds = load_dataset("shapes")
    train, val = ds.examples("train")[:TRAIN_PAIRS], ds.examples("val")[:VAL_PAIRS]
    seed_everything(0)
    model = create_model(model_name, **OVERRIDES[model_name])
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as work:
        model.fit(train, val, FitContext(workdir=Path(work), seed=0))
        fit_s = time.perf_counter() - t0
        out = Path(work) / "saved"
        model.save(out)
        h = hashlib.sha256()
        for f in sorted(out.rglob("*")):
            if f.is_file() and f.suffix in (".pt", ".safetensors", ".bin"):
                state = torch.load(f, map_location="cpu", weights_only=False)
                for k, v in sorted(_tensors(state)):
                    h.update(k.encode())
                    h.update(v.detach().contiguous().numpy().tobytes())
    captions = model.caption([e.pair for e in val])
    return {"weights": h.hexdigest()[:16], "captions": hashlib.sha256("\n".join(captions).encode()).hexdigest()[:16],
            "fit_s": round(fit_s, 2), "capability": torch.backends.cpu.get_cpu_capability()}


def _tensors(obj, prefix=""):
    import torch

    if isinstance(obj, torch.Tensor):
        yield prefix, obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            yield from _tensors(v, f"{prefix}.{k}")
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            yield from _tensors(v, f"{prefix}.{i}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--one")
    ap.add_argument("--settings", default=",".join(SETTINGS))
    args = ap.parse_args()
    if args.one:
        print(json.dumps(one(args.one)))
        return
    base = {k: v for k, v in os.environ.items() if not k.startswith(("ATEN_", "ONEDNN_", "MKL_", "OMP_"))}
    base.setdefault("OMP_NUM_THREADS", "2")
    rows = []
    for name in args.settings.split(","):
        for model in OVERRIDES:
            env = {**base, **SETTINGS[name]}
            out = subprocess.run([sys.executable, __file__, "--one", model], env=env, capture_output=True, text=True)
            if out.returncode != 0:
                raise SystemExit(out.stderr[-2000:])
            rows.append({"setting": name, "model": model, **json.loads(out.stdout.strip().splitlines()[-1])})
            print(json.dumps(rows[-1]), flush=True)
    print("| setting | model | weights | captions | fit s |\n|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['setting']} | {r['model']} | {r['weights']} | {r['captions']} | {r['fit_s']} |")


if __name__ == "__main__":
    main()
