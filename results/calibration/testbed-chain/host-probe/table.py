"""Each run's echo CPU a request and p50 beside the mean of the probes before and after it; correlations."""
import json, glob, numpy as np
from pathlib import Path
HERE = Path(__file__).parent
pr = [json.loads(l) for l in open(HERE / 'probes.jsonl')][-24:]
rows = []
for i in range(12):
    d = json.load(open(glob.glob(f'{HERE}/runs/{i+1:02d}/*-seed*.json')[0]))
    m = d['modes']['none']
    echo = next(c for c in m['components'] if c['name'] == 'echo-0')
    lg = [c for c in m['components'] if c['kind'] == 'loadgen']
    before, after = pr[2*i], pr[2*i+1]
    rows.append(dict(echo_us=echo['cpu_cores']/m['throughput_rps']*1e6, p50=m['latency_ms']['p50'],
        **{k: (before[k]+after[k])/2 for k in before if k != 'at'}))
keys = list(rows[0])
for r in rows: print('  '.join(f"{k}={r[k]:.1f}" for k in keys))
A = np.array([[r[k] for k in keys] for r in rows])
print('corr with echo_us:', {k: round(float(np.corrcoef(A[:,0], A[:,j])[0,1]),2) for j,k in enumerate(keys)})
print('corr with p50:', {k: round(float(np.corrcoef(A[:,1], A[:,j])[0,1]),2) for j,k in enumerate(keys)})
