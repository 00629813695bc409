"""GPU check of the baselines (run on a CUDA machine from the repo root: `python scripts/check_baselines_gpu.py`;
env DEV=cpu SMOKE=1 N=8 STEPS=6 B=4 EPOCHS=2 for a CPU smoke run). Paper-sized DUDA (RN101 layer3, fp16 feature store) and
ViT-B-32 nearest-neighbour on CUDA with random backbones (no weights needed); save/load identity; step timings for the
paper configuration. Writes $OUT/gpu_check.json (or /tmp)."""
import json, os, sys, tempfile, time
from pathlib import Path
import torch
sys.path.insert(0, "tests")
from _baselines_toy import make_toy
from idcbench.captioner import FitContext
from idcbench.factory import create_model
from idcbench.models.baselines.duda import DUDA, DUDANet
from idcbench.models.baselines.nearest_neighbour import NearestNeighbour
from idcbench.models.baselines.text import corpus_cider_d

out = Path(os.environ.get("OUT", "/tmp"))
DEV = os.environ.get("DEV", "cuda"); N = int(os.environ.get("N", "600"))
res = {"device": torch.cuda.get_device_name(0) if DEV == "cuda" else "cpu", "torch": torch.__version__}
root = Path(tempfile.mkdtemp())
train, val, test = make_toy(root, N, seed=0), make_toy(root, max(4, N // 15), seed=2, start=5000), make_toy(root, max(4, N // 10), seed=1, start=1000)
refs = {e.id: list(e.references) for e in test}
mf = create_model("most-frequent"); mf.fit(train, [], None)
res["mf_cider"] = corpus_cider_d(refs, dict(zip(refs, mf.caption(test))))[0] * 100

t = time.time()
SMOKE = {"backbone": "idc-tiny-vit", "grid_layer": -1} if os.environ.get("SMOKE") else {}
nn = create_model("nearest-neighbour", pretrained=None, **SMOKE).to(DEV)
nn.fit(train, [], FitContext(workdir=root / "nn", device=DEV))
caps = nn.caption(test)
res["nn_vitb32_fit_caption_s"] = time.time() - t
res["nn_vitb32_cider"] = corpus_cider_d(refs, dict(zip(refs, caps)))[0] * 100
nn.save(root / "nn_saved")
res["nn_reload_identical_cuda"] = NearestNeighbour.load(root / "nn_saved", device=DEV).caption(test) == caps
res["nn_reload_cpu_equal"] = NearestNeighbour.load(root / "nn_saved", device="cpu").caption(test) == caps

t = time.time()
m = create_model("duda", pretrained=None, epochs=int(os.environ.get("EPOCHS", "4")), batch_size=64, **SMOKE)
logs = []
m.fit(train, val, FitContext(workdir=root / "duda", device=DEV, on_progress=lambda *a: logs.append(a)))
res["duda_rn101_fit_s"] = time.time() - t
res["duda_grid"] = list(m._fx.encode([test[0].before], "grid").shape)
res["duda_history"] = m.history
caps = m.caption(test)
res["duda_rn101_cider"] = corpus_cider_d(refs, dict(zip(refs, caps)))[0] * 100
res["duda_samples"] = caps[:4]
m.save(root / "duda_saved")
res["duda_reload_identical"] = DUDA.load(root / "duda_saved", device=DEV).caption(test) == caps

# paper-size training step timing on CLEVR-shaped features (batch 256, 1024x14x14, fp16 store, 23 tokens)
net = DUDANet(1024, 80, {**DUDA().config, **create_model("duda").config}).to(DEV)
opt = torch.optim.Adam(net.parameters(), 1e-3)
B = int(os.environ.get("B", "256"))
x = torch.randn(2 * B, 1024, 14, 14, device=DEV, dtype=torch.float16)
tok = torch.randint(4, 80, (B, 24), device=DEV)
for i in range(int(os.environ.get("STEPS", "25"))):
    if i == 5:
        (torch.cuda.synchronize() if DEV == "cuda" else None); t = time.time()
    lo, al, ab, aa = net(x[:B], x[B:], tok)
    loss = torch.nn.functional.cross_entropy(lo.reshape(-1, 80), tok[:, 1:].reshape(-1))
    opt.zero_grad(); loss.backward(); opt.step()
(torch.cuda.synchronize() if DEV == "cuda" else None)
res["duda_paper_step_ms_b256"] = (time.time() - t) / (int(os.environ.get("STEPS", "25")) - 5) * 1000
res["clevr_10k_steps_min"] = res["duda_paper_step_ms_b256"] * 10000 / 60000
print(json.dumps(res, indent=1))
(out / "gpu_check.json").write_text(json.dumps(res, indent=1))
