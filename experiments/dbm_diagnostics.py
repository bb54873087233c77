"""Why is a DBM sharp? Its parameters and its posterior on test images, in numbers (issue 32, item 2): for each
weight matrix its standard deviation, largest |w| and top singular values; for each layer its biases' range and
mean; and under the mean-field posterior of the first --examples binarised test images, each hidden layer's mean
activation (beside the recipe's sparsity target, from the card) and the share of (unit, image) pairs saturated
(mean below 0.01 or above 0.99). A DBM that AIS can anneal has moderate weights and few saturated units; the
paper's 784-500-1000 has log Z 356.18 (`../shared/RESEARCH.md`).

    python experiments/dbm_diagnostics.py dbm-500-1000-bmnist            # a published name, or a folder
    python experiments/dbm_diagnostics.py models/dbm-a models/dbm-b --json
    python experiments/dbm_diagnostics.py models/dbm-a --ais-betas 1000 5000     # and a quick log Z

With --ais-betas: also the mean-field free energy of the whole test split, forward AIS's log Z (--ais-chains
chains, the base model fitted to the training images) at each schedule length with its ESS, and the test bound
it gives at the longest: a quick look, not a measurement (`zoo eval` says whether an estimate converged).
"""
import json
import sys

import numpy as np

from zoo.cli import args as cli

SATURATED = 0.01


def parse_args(argv):
    parser = cli.Parser(prog="dbm_diagnostics.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="+", metavar="MODEL", help="a DBM: a published name or a model folder")
    parser.add_argument("--examples", type=cli.positive_int, default=1000,
                        help="binarised test images for the posterior (default 1000)")
    parser.add_argument("--ais-betas", type=cli.positive_int, nargs="+", default=[], metavar="N",
                        help="also log Z by forward AIS at each of these schedule lengths (default: none)")
    parser.add_argument("--ais-chains", type=cli.positive_int, default=50, help="(default: %(default)s)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the tables")
    return parser.parse_args(argv)


def diagnose(model, x, sparsity_targets=None):
    """The numbers of one DBM (a dict): per weight matrix, per layer's biases, per hidden layer's posterior."""
    kernels = [np.asarray(w, np.float64) for w in model.kernels]
    biases = [np.asarray(b, np.float64) for b in model.biases]
    means = model.mean_field(x)
    targets = list(sparsity_targets or [None] * len(means))
    return {
        "sizes": model.sizes,
        "weights": [{"std": float(w.std()), "max_abs": float(np.abs(w).max()),
                     "top_singular_values": [float(s) for s in np.linalg.svd(w, compute_uv=False)[:3]]}
                    for w in kernels],
        "biases": [{"min": float(b.min()), "max": float(b.max()), "mean": float(b.mean())} for b in biases],
        "posterior": [{"mean_activation": float(m.mean()), "target": t,
                       "saturated": float(((m < SATURATED) | (m > 1 - SATURATED)).mean())}
                      for m, t in zip(means, targets)],
    }


def quick_log_z(model, split, schedules, n_chains, seed=0):
    """{free_energy: the mean mean-field free energy of the test split, log_z: [forward AIS at each length]}."""
    from zoo import evaluation

    runs = [evaluation.ais(model, n_betas=n, n_chains=n_chains, data=split.train.x, seed=seed) for n in schedules]
    return {"free_energy": float(evaluation.mean_free_energy(model, split.test.x)),
            "log_z": [{"log_z": r.log_z, "ess": r.ess, "n_chains": n_chains, "n_betas": n}
                      for r, n in zip(runs, schedules)]}


def report(name, d):
    print(f"{name}: {'-'.join(map(str, d['sizes']))}")
    print(f"  {'weights':<10}{'std':>8}{'max |w|':>9}   top singular values")
    for l, w in enumerate(d["weights"]):
        print(f"  {f'W{l}':<10}{w['std']:>8.3f}{w['max_abs']:>9.2f}   "
              + ", ".join(f"{s:.1f}" for s in w["top_singular_values"]))
    print(f"  {'biases':<10}{'min':>8}{'max':>9}{'mean':>8}")
    for l, b in enumerate(d["biases"]):
        print(f"  {'v' if l == 0 else f'h{l}':<10}{b['min']:>8.2f}{b['max']:>9.2f}{b['mean']:>8.2f}")
    print(f"  {'posterior':<10}{'on':>8}{'target':>9}{'saturated':>11}")
    for l, p in enumerate(d["posterior"], 1):
        target = "-" if p["target"] is None else f"{p['target']:.2f}"
        print(f"  {f'h{l}':<10}{p['mean_activation']:>8.3f}{target:>9}{100 * p['saturated']:>10.1f}%")
    if "log_z" in d:
        print(f"  mean-field free energy on the test split {d['free_energy']:.1f}; forward AIS log Z "
              + ", ".join(f"{r['log_z']:.1f} (ESS {r['ess']:.1f} of {r['n_chains']}, {r['n_betas']} temperatures)"
                          for r in d["log_z"])
              + f"; test bound {d['free_energy'] + d['log_z'][-1]['log_z']:.1f} nats (not converged unless the "
              "lengths agree)")


def run(args):
    from zoo import data, hub
    from zoo.models import DBM

    split = data.load("binarized_mnist")
    x = split.test.x[:args.examples]
    results = {}
    for name in args.models:
        model = hub.load(name)
        if not isinstance(model, DBM):
            raise ValueError(f"{name} is not a DBM (its model is {type(model).__name__})")
        config = model.get_config()
        results[name] = diagnose(model, x, config.get("sparsity_targets"))
        if args.ais_betas:
            results[name].update(quick_log_z(model, split, args.ais_betas, args.ais_chains))
    if args.json:
        print(json.dumps({"examples": len(x), "results": results}))
    else:
        print(f"(posterior: mean field on the first {len(x):,} binarised test images; saturated: mean < "
              f"{SATURATED} or > {1 - SATURATED})")
        for name, d in results.items():
            report(name, d)
    return 0


def main(argv=None):
    return cli.run_script(parse_args, cli.checked("dbm_diagnostics.py", run), argv)


if __name__ == "__main__":
    sys.exit(main())
