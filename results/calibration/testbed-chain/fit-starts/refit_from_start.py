import sys
import meshsim.calibrate.fit as f
factor = float(sys.argv[1])
orig = f._start
def scaled(p, prior):
    v = orig(p, prior)
    return min(v * factor, p.upper * 0.99) if p.stage == "latency" else v
f._start = scaled
from meshsim.cli import main
sys.argv = ["meshsim", "calibrate", "/work/main/scenarios/testbed-chain.yaml", "--backend", "local", "--no-measure", "--out", sys.argv[2]]
main()
