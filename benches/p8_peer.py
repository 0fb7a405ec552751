"""P8's peer: the same three analyses a lab would write with numpy and allantools.

    python p8_peer.py summary FILE COLUMN
    python p8_peer.py fit FILE Y X1 X2
    python p8_peer.py allan FILE COLUMN TAU0

Reads only the columns it needs (numpy.loadtxt with usecols, its C parser), computes what
`tsagent analyze` computes and prints it as JSON, so the benchmark can check that both agree.
"""

import json
import sys

import numpy as np


def columns(path, names):
    with open(path) as f:
        header = f.readline().strip().split(",")
    idx = [header.index(n) for n in names]
    data = np.loadtxt(path, delimiter=",", skiprows=1, usecols=idx, ndmin=2)
    return [data[:, j] for j in range(len(names))]


def main():
    what, path = sys.argv[1], sys.argv[2]
    if what == "summary":
        (y,) = columns(path, [sys.argv[3]])
        n = len(y)
        s = float(np.std(y, ddof=1))
        out = {"n": n, "mean": float(np.mean(y)), "s": s, "u_mean": s / np.sqrt(n), "dof": n - 1}
    elif what == "fit":
        y, x1, x2 = columns(path, sys.argv[3:6])
        a = np.column_stack([np.ones_like(x1), x1, x2])
        beta, rss, rank, sv = np.linalg.lstsq(a, y, rcond=None)
        dof = len(y) - a.shape[1]
        s2 = float(rss[0]) / dof
        cov = s2 * np.linalg.inv(a.T @ a)
        out = {
            "coefficients": [
                {"name": n, "value": float(b), "u": float(np.sqrt(cov[i, i]))}
                for i, (n, b) in enumerate(zip(["intercept"] + sys.argv[4:6], beta))
            ],
            "covariance": cov.tolist(),
            "s_residual": float(np.sqrt(s2)),
            "dof": dof,
            "predictions": [],
        }
    elif what == "allan":
        import allantools

        (y,) = columns(path, [sys.argv[3]])
        rate = 1.0 / float(sys.argv[4])
        t, ad, _, _ = allantools.adev(y, rate=rate, data_type="freq", taus="octave")
        _, oad, _, n = allantools.oadev(y, rate=rate, data_type="freq", taus="octave")
        tm, md, _, _ = allantools.mdev(y, rate=rate, data_type="freq", taus="octave")
        mdev = dict(zip(tm.tolist(), md.tolist()))
        out = {
            "points": [
                {"tau": float(tau), "adev": float(a), "oadev": float(o), "mdev": mdev.get(float(tau)), "n": int(k)}
                for tau, a, o, k in zip(t, ad, oad, n)
            ]
        }
    else:
        sys.exit(f"unknown analysis {what}")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
