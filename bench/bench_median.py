"""Sliding-median cost per frame of ``NumbaProjector`` (subtract_median).

Usage: ``python bench/bench_median.py F DTYPE THREADS METHOD[,METHOD...] [REPS]``
with METHOD in blocked, band, sorted, histogram:bin, histogram:pixel. Pushes F
frames of a 1024x1024 synthetic particle movie, then times push and project
over 30 more; prints the median over REPS runs of the mean per frame. The
movie is cached under /tmp/med.
"""
import sys, time, os, statistics, numpy as np, numba
from flowtrace_gpu.synthetic import synthetic_movie
from flowtrace_gpu.plan import TracePlan, TraceOptions
from flowtrace_gpu.backends.numba_backend import NumbaProjector
F = int(sys.argv[1]); dt = np.dtype(sys.argv[2]); threads = int(sys.argv[3])
methods = sys.argv[4].split(','); reps = int(sys.argv[5]) if len(sys.argv) > 5 else 3
N = F + 30
os.makedirs("/tmp/med", exist_ok=True)
path = f"/tmp/med/movie_{dt}_{N}.npy"
if os.path.exists(path):
    m = np.load(path)
else:
    m = synthetic_movie(N, (1024, 1024), dtype=dt); np.save(path, m)
numba.set_num_threads(threads)
plan = TracePlan(F, (1024, 1024), dt, TraceOptions(subtract_median=True))
for meth in methods:
    kw = {'median': meth}
    if meth.startswith('histogram'):
        kw = {'median': 'histogram', 'hist_layout': meth.split(':')[1] if ':' in meth else 'bin'}
    pushes, projs = [], []
    wp = NumbaProjector(TracePlan(F, (8, 8), dt, TraceOptions(subtract_median=True)), **kw)
    for i in range(F + 2): wp.push(m[i, :8, :8]);
    wp.project()
    for r in range(reps):
        p = NumbaProjector(plan, **kw)
        for i in range(F): p.push(m[i])
        p.project()
        tp = tu = 0
        for i in range(F, N):
            t = time.perf_counter(); p.push(m[i]); t1 = time.perf_counter(); p.project(); t2 = time.perf_counter()
            tu += t1 - t; tp += t2 - t1
        pushes.append(tu * 1000 / (N - F)); projs.append(tp * 1000 / (N - F))
        rebuilt = p.median.rebuilt / (N - F) / p.npix
        del p
    print(f"F={F} {dt} thr={threads} {meth:14s} push {statistics.median(pushes):6.2f} ms  project {statistics.median(projs):5.2f} ms  (push runs {', '.join(f'{x:.1f}' for x in pushes)})"
          + (f"  band rebuilt {rebuilt:.2%} px/frame" if meth == "band" else ""), flush=True)
