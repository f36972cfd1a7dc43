#!/usr/bin/env python
"""Writes tests/fixtures/suggestions.json: fixed (lr, loss) curves and what fastai v2's suggestion
functions (fastai/callback/schedule.py: valley, steep, minimum, slide) return for them.

usage: ~/.cache/peer-venv/bin/python tests/peer/make_suggestion_fixture.py [--check FILE]

The curves are given as fastai's Recorder holds them after lr_find (every recorded lr and smoothed
loss); the expected values follow `Learner.lr_find` exactly: the curve is cut to
`[num_it//10:-5]`, converted with `tensor(...)` (float32), cut again at the first NaN, then each
function is called. A function that raises (slide needs at least 16 points) is recorded as null.
With --check FILE it recomputes and compares to FILE instead of writing (exit 1 on a difference).
"""
import json, math, sys
from pathlib import Path

import numpy as np
import torch
from fastai.callback.schedule import valley, steep, minimum, slide
from fastai.torch_core import tensor

HERE = Path(__file__).resolve().parent
PEER_RESULT = Path('/work/shared/peer/results/lr_find_tiny.json')
FUNCS = {'valley': valley, 'steep': steep, 'minimum': minimum, 'slide': slide}


def suggest(rec_lrs, rec_losses, num_it):
    # fastai/callback/schedule.py, Learner.lr_find (suggest_funcs branch)
    lrs, losses = tensor(rec_lrs[num_it // 10:-5]), tensor(rec_losses[num_it // 10:-5])
    nan_idxs = torch.nonzero(torch.isnan(losses.view(-1)))
    if len(nan_idxs) > 0:
        drop_idx = min(nan_idxs)
        lrs = lrs[:drop_idx]
        losses = losses[:drop_idx]
    out = {}
    for name, fn in FUNCS.items():
        try:
            lr, (px, py) = fn(lrs, losses, num_it)
            out[name] = {'lr': float(lr), 'point': [float(px), float(py)]}
        except (IndexError, RuntimeError, ValueError) as e:
            out[name] = None
    return out


def exp_lrs(start, end, num_it, n):
    return [start * (end / start) ** (i / num_it) for i in range(n)]


def smooth(raw, beta=0.98):
    # fastai's AvgSmoothLoss: lerp with bias correction
    val, out = 0.0, []
    for i, x in enumerate(raw, 1):
        val = val * beta + x * (1 - beta)
        out.append(val / (1 - beta ** i))
    return out


def curves():
    cs = []
    if PEER_RESULT.exists():
        d = json.loads(PEER_RESULT.read_text())
        cs.append({'name': 'fastai_lr_find_tiny', 'num_it': d['num_it'],
                   'lrs': d['curve']['lrs'], 'losses': d['curve']['losses'],
                   'peer_suggestions': d['suggestions']})
    rng = np.random.default_rng(7)
    # a U-shaped curve with noise, smoothed as the Recorder would
    n = 100
    lrs = exp_lrs(1e-7, 10, n, n)
    raw = [6 - 2.5 / (1 + math.exp(-(math.log10(lr) + 3.5) * 2)) + 4 * max(0.0, math.log10(lr) + 0.7) ** 2
           + 0.15 * rng.standard_normal() for lr in lrs]
    cs.append({'name': 'synthetic_u', 'num_it': n, 'lrs': lrs, 'losses': smooth(raw)})
    # stopped early (divergence) at 73 of 100 iterations
    lrs = exp_lrs(1e-6, 1, 100, 73)
    raw = [5 - 1.5 * math.tanh(i / 15) + (0.02 * (i - 50) ** 2 if i > 50 else 0) + 0.1 * rng.standard_normal()
           for i in range(73)]
    cs.append({'name': 'synthetic_early_stop', 'num_it': 100, 'lrs': lrs, 'losses': smooth(raw)})
    # a NaN part-way: suggestions use the points before it
    lrs = exp_lrs(1e-7, 10, 100, 100)
    raw = [4 - math.tanh(i / 20) + 0.05 * rng.standard_normal() for i in range(100)]
    losses = smooth(raw)
    losses[80:] = [float('nan')] * 20
    cs.append({'name': 'synthetic_nan', 'num_it': 100, 'lrs': lrs, 'losses': losses})
    # too short for slide (fewer than 16 points after the cut)
    lrs = exp_lrs(1e-5, 1, 20, 20)
    raw = [3 - 0.03 * i + 0.02 * rng.standard_normal() for i in range(20)]
    cs.append({'name': 'short_20', 'num_it': 20, 'lrs': lrs, 'losses': smooth(raw)})
    # linear schedule (Leslie Smith)
    lrs = [1e-4 + (1e-1 - 1e-4) * i / 60 for i in range(60)]
    raw = [2 - 0.6 * math.sin(min(i, 40) / 40 * math.pi / 2) + (0.01 * (i - 40) ** 2 if i > 40 else 0)
           + 0.03 * rng.standard_normal() for i in range(60)]
    cs.append({'name': 'linear_schedule', 'num_it': 60, 'lrs': lrs, 'losses': smooth(raw)})
    # only rising: valley's longest-decrease search never moves
    lrs = exp_lrs(1e-7, 10, 40, 40)
    cs.append({'name': 'rising', 'num_it': 40, 'lrs': lrs, 'losses': [1 + 0.1 * i for i in range(40)]})
    # a single early dip: valley's index becomes -1 (the last point, by Python indexing)
    lrs = exp_lrs(1e-7, 10, 40, 40)
    cs.append({'name': 'one_dip', 'num_it': 40, 'lrs': lrs,
               'losses': [3.0] * 4 + [2.0, 1.0] + [3 + 0.1 * i for i in range(34)]})
    # ties and a flat stretch (argmin takes the first)
    lrs = exp_lrs(1e-7, 10, 50, 50)
    cs.append({'name': 'flat_ties', 'num_it': 50, 'lrs': lrs,
               'losses': [5.0] * 10 + [4.0] * 10 + [3.0] * 10 + [3.0] * 10 + [6.0] * 10})
    return cs


def build():
    out = []
    for c in curves():
        c['expected'] = suggest(c['lrs'], c['losses'], c['num_it'])
        out.append(c)
    return {'generator': 'lr-find/tests/peer/make_suggestion_fixture.py',
            'fastai': __import__('fastai').__version__, 'torch': torch.__version__, 'numpy': np.__version__,
            'curves': out}


def main():
    fx = build()
    if len(sys.argv) == 3 and sys.argv[1] == '--check':
        old = json.loads(Path(sys.argv[2]).read_text())
        if len(old['curves']) != len(fx['curves']):
            print('the fixture has another set of curves', file=sys.stderr)
            sys.exit(1)
        ok = True
        for a, b in zip(old['curves'], fx['curves']):
            if json.dumps(a['expected']) != json.dumps(b['expected']):
                print(f"{a['name']}: fixture {a['expected']} != fastai {b['expected']}", file=sys.stderr)
                ok = False
        sys.exit(0 if ok else 1)
    path = HERE.parent / 'fixtures' / 'suggestions.json'
    # NaN is not JSON: a lost (NaN) loss is written as null
    for c in fx['curves']:
        c['losses'] = [None if isinstance(x, float) and math.isnan(x) else x for x in c['losses']]
    path.write_text(json.dumps(fx, indent=1, allow_nan=False) + '\n')
    print(f'wrote {path}', file=sys.stderr)


if __name__ == '__main__':
    main()
