cd /tmp/arr
for i in 1 2; do for a in constant poisson; do
  meshsim measure tp-$a.yaml --mode none --out out-$a-$i > log-$a-$i.txt 2>&1
done; done
cd /tmp/arr
for i in 1 2; do for a in n1 poisson; do
  meshsim measure tp-$a.yaml --mode none --mode sidecar --out out2-$a-$i > log2-$a-$i.txt 2>&1
done; done
cd /tmp/arr
for r in 2 25 50 100 200; do for a in constant poisson; do
  meshsim measure r-$a-$r.yaml --mode none --out out3-$a-$r > log3-$a-$r.txt 2>&1
done; done
