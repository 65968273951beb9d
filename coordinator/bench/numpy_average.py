"""What Flower's FedAvg costs in numpy: np.average over a pre-built (N, P) float32 stack of
updates, weighted by example counts. Prints one JSON object.

Weights are float32 so numpy stays in float32 throughout (its fastest path): integer or
float64 weights would upcast the (N, P) product to float64 and run about 2x slower. The
stack is generated before the clock starts; the time is the best of --repeats calls.

    /usr/bin/python3 coordinator/bench/numpy_average.py --updates 100 --params 1000000
"""

import argparse
import json
import resource
import time

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--updates", type=int, required=True)
    parser.add_argument("--params", type=int, required=True)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    stack = rng.standard_normal((args.updates, args.params), dtype=np.float32)
    stack *= 0.01
    weights = rng.integers(1, 1000, args.updates).astype(np.float32)

    best = float("inf")
    for _ in range(args.repeats):
        start = time.perf_counter()
        average = np.average(stack, axis=0, weights=weights)
        best = min(best, time.perf_counter() - start)
    assert average.dtype == np.float32 and average.shape == (args.params,)

    print(
        json.dumps(
            {
                "updates": args.updates,
                "params": args.params,
                "seconds": best,
                "gbPerSec": args.updates * args.params * 4 / best / 1e9,
                # Linux reports ru_maxrss in KiB.
                "peakRssMb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                "numpy": np.__version__,
            }
        )
    )


if __name__ == "__main__":
    main()
