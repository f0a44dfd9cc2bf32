from pathlib import Path
HERE = Path(__file__).parent
import json, glob, numpy as np
for tag, idx in (("idle", range(1, 13, 2)), ("spin", range(2, 13, 2))):
    e, p, bg = [], [], []
    for i in idx:
        fs = glob.glob(f'{HERE}/runs/{i:02d}/*-seed*.json')
        if not fs: continue
        m = json.load(open(fs[0]))['modes']['none']
        echo = next(c for c in m['components'] if c['name'] == 'echo-0')
        lg = sum(c['cpu_cores'] for c in m['components'] if c['kind'] == 'loadgen')
        e.append(echo['cpu_cores'] / m['throughput_rps'] * 1e6); p.append(m['latency_ms']['p50']); bg.append((lg, m['background_cores']))
    e = np.array(e); p = np.array(p)
    print(tag, 'echo us/req', np.round(e), f'mean {e.mean():.0f} sd {e.std(ddof=1)/e.mean()*100:.1f}%', 'p50', np.round(p, 3), f'mean {p.mean():.3f} sd {p.std(ddof=1)/p.mean()*100:.1f}%')
    print('   loadgen cores, background', bg[:2])
