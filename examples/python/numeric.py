"""Numeric example: linear algebra, FFT and an ODE solve with numpy/scipy.

Run: mercato exec examples/python/numeric.py [N=200]
Writes /output/numeric.json. Deterministic: seeded generator, no clocks.
"""

import json
import sys

import numpy as np
from scipy import integrate, linalg

n = int(sys.argv[1]) if len(sys.argv) > 1 else 200
rng = np.random.default_rng(12345)
a = rng.standard_normal((n, n))
spd = a @ a.T + n * np.eye(n)
b = rng.standard_normal(n)
x = linalg.solve(spd, b, assume_a="pos")
eig = np.linalg.eigvalsh(spd)
signal = np.sin(np.linspace(0, 40 * np.pi, 4096)) + 0.1 * rng.standard_normal(4096)
peak = int(np.argmax(np.abs(np.fft.rfft(signal))))
sol = integrate.solve_ivp(lambda t, y: [y[1], -y[0]], (0.0, 10.0), [1.0, 0.0], rtol=1e-9, atol=1e-9)
result = {
    "n": n,
    "residual": float(np.linalg.norm(spd @ x - b)),
    "eig_min": float(eig[0]),
    "eig_max": float(eig[-1]),
    "fft_peak_bin": peak,
    "ode_y_end": float(sol.y[0, -1]),
}
with open("/output/numeric.json", "w") as f:
    json.dump(result, f, sort_keys=True, indent=1)
print(json.dumps(result, sort_keys=True))
