"""Diagnostic: CNN features pooled over each organ's own voxels (a mask-aware Gamma) -> organ normal/abnormal. Held-out AUC per organ."""
import argparse, json, sys, time, glob
from pathlib import Path
sys.path.insert(0, '/work/main')
import numpy as np, torch, torch.nn as nn, torch.nn.functional as F
from inference.labels import merged_labels
from training.case_cache import CaseCache, Geometry
from training.classifier_eval import roc_auc
ap = argparse.ArgumentParser()
ap.add_argument('--epochs', type=int, default=5)
ap.add_argument('--lr', type=float, default=1e-3)
ap.add_argument('--batch', type=int, default=4)
a = ap.parse_args()
torch.set_num_threads(2); torch.manual_seed(0)
cohort = Path('/tmp/tc_train/build/cohort_0')
def ids(split): return sorted({json.loads(l)['case_id'] for l in open(cohort / f'{split}.jsonl')})
table = merged_labels()
ORG = ['liver', 'pancreas', 'stomach', 'colorectum', 'esophagus']
OID = [table.by_name(o).id for o in ORG]
cache = CaseCache(Path('/tmp/exp/cache_4x32x32_ll16'), Geometry((32, 256, 256), (4, 32, 32), 16))
files = {Path(p).name.split('-')[0]: Path(p) for p in glob.glob('/tmp/exp/cache_4x32x32_ll16/*.safetensors')}
train, val = ids('train'), ids('val') + ids('test')
def org_small(cid):
    O = np.load(f'/tmp/exp/voxmask/{cid}.npz', allow_pickle=False)['org'][:, ::4, ::4]  # 32x64x64, nearest
    return torch.from_numpy(np.stack([O == i for i in OID]).astype(np.float32))  # (5, 32, 64, 64)
masks = {c: org_small(c) for c in train + val}
labels = {c: torch.tensor([float(json.load(open(cohort / 'cases' / c / 'ground_truth.json'))['organ_abnormal'].get(o, 0)) for o in ORG]) for c in train + val}
class Net(nn.Module):
    def __init__(s):
        super().__init__()
        s.stem = nn.Sequential(nn.Conv3d(1, 8, 3, stride=(1, 2, 2), padding=1), nn.GELU(), nn.Conv3d(8, 16, 3, stride=(1, 2, 2), padding=1), nn.GELU(),
                               nn.Conv3d(16, 16, 3, padding=1), nn.GELU())
        s.head = nn.Sequential(nn.Linear(32 + 5, 32), nn.GELU(), nn.Linear(32, 1))
    def forward(s, vol, m):  # vol (B,1,32,256,256), m (B,5,32,64,64)
        f = s.stem(vol)  # (B,16,32,64,64)
        n = m.sum((2, 3, 4)).clamp_min(1)  # (B,5)
        mean = torch.einsum('bcdhw,bodhw->boc', f, m) / n[..., None]
        sq = torch.einsum('bcdhw,bodhw->boc', f * f, m) / n[..., None]
        var = sq - mean * mean
        oh = torch.eye(5).expand(f.shape[0], 5, 5)
        return s.head(torch.cat([mean, var, oh], -1))[..., 0], n > 20  # (B,5)
net = Net()
opt = torch.optim.AdamW(net.parameters(), lr=a.lr)
g = torch.Generator().manual_seed(0)
def batch(cs, flip=False):
    v = torch.stack([cache.load(files[c]).volume for c in cs]); m = torch.stack([masks[c] for c in cs]); y = torch.stack([labels[c] for c in cs])
    if flip and bool(torch.rand((), generator=g) < 0.5): v, m = v.flip(4), m.flip(4)
    if flip and bool(torch.rand((), generator=g) < 0.5): v, m = v.flip(2), m.flip(2)
    return v, m, y
@torch.no_grad()
def evaluate():
    net.eval(); S, Y, P = [], [], {o: ([], []) for o in ORG}
    for i in range(0, len(val), 4):
        v, m, y = batch(val[i:i + 4]); lo, ok = net(v, m)
        for b in range(lo.shape[0]):
            for k, o in enumerate(ORG):
                if ok[b, k]: P[o][0].append(float(lo[b, k])); P[o][1].append(int(y[b, k])); S.append(float(lo[b, k])); Y.append(int(y[b, k]))
    net.train()
    return roc_auc(S, Y), {o: (None if roc_auc(*v) is None else round(roc_auc(*v), 3), sum(v[1])) for o, v in P.items()}
t0 = time.time()
for ep in range(a.epochs):
    order = torch.randperm(len(train), generator=g).tolist(); tot = 0
    for s in range(0, len(order), a.batch):
        v, m, y = batch([train[i] for i in order[s:s + a.batch]], flip=True)
        lo, ok = net(v, m)
        loss = F.binary_cross_entropy_with_logits(lo[ok], y[ok], pos_weight=torch.tensor(3.0))
        opt.zero_grad(); loss.backward(); opt.step(); tot += float(loss.detach())
    auc, per = evaluate()
    print(f'ep {ep + 1}: loss {tot / (len(order) / a.batch):.4f} val organ AUC {auc:.3f} {per} ({time.time() - t0:.0f}s)', flush=True)
