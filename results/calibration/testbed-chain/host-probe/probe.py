"""Host-state probes, each reporting CPU microseconds per unit of work. Pinned to one core."""
import os, sys, time, json, socket
import numpy as np
core = int(sys.argv[1]) if len(sys.argv) > 1 else 1
os.sched_setaffinity(0, {core})
out = {}
def cpu(): return time.thread_time()
# 1 pure python loop
t = cpu(); s = 0
for i in range(300000): s += i * i
out['loop_us'] = (cpu() - t) * 1e6 / 300
# 2 memory random gather, 64 MB
a = np.arange(8 * 2**20, dtype=np.int64); idx = np.random.default_rng(1).integers(0, len(a), 2**21)
a[idx].sum(); t = cpu(); a[idx].sum(); out['gather_ns'] = (cpu() - t) * 1e9 / len(idx)
# 3 socket ping-pong with a forked child (both pinned to the same core)
p, c = socket.socketpair()
pid = os.fork()
if pid == 0:
    p.close()
    while True:
        m = c.recv(64)
        if not m or m == b'q': break
        c.send(m)
    os._exit(0)
c.close(); n = 3000
t0 = time.perf_counter(); t = cpu(); c0 = os.times()
for i in range(n):
    p.send(b'x' * 32); p.recv(64)
p.send(b'q'); os.waitpid(pid, 0); c1 = os.times()
out['pingpong_cpu_us'] = ((cpu() - t) + (c1.children_user + c1.children_system - c0.children_user - c0.children_system)) * 1e6 / n
out['pingpong_wall_us'] = (time.perf_counter() - t0) * 1e6 / n
# 4 idle then burst: a burst touching 2 MB after a 10 ms sleep vs right after another
buf = np.ones(2**18)  # 2 MB
def burst():
    d = {}
    for i in range(2000): d[i] = i
    return buf.sum()
burst()
cold, warm = [], []
for i in range(60):
    time.sleep(0.010)
    t = cpu(); burst(); cold.append(cpu() - t)
    t = cpu(); burst(); warm.append(cpu() - t)
out['burst_cold_us'] = float(np.median(cold) * 1e6)
out['burst_warm_us'] = float(np.median(warm) * 1e6)
out['at'] = time.strftime('%H:%M:%S')
print(json.dumps({k: (round(v, 2) if isinstance(v, float) else v) for k, v in out.items()}))
