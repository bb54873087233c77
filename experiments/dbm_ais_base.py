"""Which base model lets AIS converge on a DBM (issue 32)? Forward AIS's log Z of each DBM at each schedule length,
from two base models of independent units (no weights), both fitted to the training images: "visible" (the
visible units match the pixels' means, the hidden ones uniform: the zoo's base until issue 32, Salakhutdinov &
Murray's for an RBM) and "every layer" (the hidden units too match the means of the mean-field posterior:
`zoo.DBM.base_parameters`, the base of `zoo eval` now). Forward AIS is too low on average, so of two estimates
the higher is the better one, and a converged estimate stops rising with the schedule.

    python experiments/dbm_ais_base.py dbm-500-1000-bmnist --ais-betas 1000 5000 20000
    python experiments/dbm_ais_base.py models/dbm-a --ais-betas 1000 5000 --ais-chains 50 --bases visible

Prints a Markdown table: base, temperatures, log Z +- its standard error, ESS (of the chains), seconds.
"""
import sys

import numpy as np

from zoo.cli import args as cli

BASES = {"visible": "visible", "every": "every layer"}  # --bases choice: its label in the table


def parse_args(argv):
    parser = cli.Parser(prog="dbm_ais_base.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="+", metavar="MODEL", help="a DBM: a published name or a model folder")
    parser.add_argument("--ais-betas", type=cli.positive_int, nargs="+", default=[1000, 5000], metavar="N",
                        help="schedule lengths (default: 1000 5000)")
    parser.add_argument("--ais-chains", type=cli.positive_int, default=100, help="(default: %(default)s)")
    parser.add_argument("--bases", nargs="+", choices=list(BASES), default=list(BASES),
                        help="which base models (default: both)")
    parser.add_argument("--dataset", default="binarized_mnist", help="its training images fit the bases "
                        "(default: %(default)s)")
    parser.add_argument("--seed", type=cli.nonnegative_int, default=0)
    return parser.parse_args(argv)


def visible_only(model, x):
    """The base before issue 32: the visible units fitted to x's means, the hidden ones at zero."""
    return np.concatenate([model.layer_units[0].bias_from_mean(x.mean(0)), np.zeros(sum(model.sizes[1:]))])


def rows(model, x, schedules, n_chains, bases, seed):
    from zoo import evaluation

    for base in bases:
        fitted = visible_only(model, x) if base == "visible" else model.base_parameters(x)
        for n in schedules:
            r = evaluation.ais(model, n_betas=n, n_chains=n_chains, base=fitted, seed=seed)
            yield {"base": BASES[base], "n_betas": n, "log_z": r.log_z, "std": r.log_z_std,
                   "ess": r.ess, "seconds": r.seconds}


def run(args):
    from zoo import data, hub
    from zoo.models.dbm import DBM

    x = data.load(args.dataset).train.x
    for name in args.models:
        model = hub.load(name)
        if not isinstance(model, DBM):
            raise ValueError(f"{name} is a {type(model).__name__}, not a DBM")
        print(f"\n{name} ({args.ais_chains} chains, seed {args.seed})\n")
        print("| base | temperatures | log Z | ESS | seconds |\n|---|---:|---:|---:|---:|")
        for r in rows(model, x, args.ais_betas, args.ais_chains, args.bases, args.seed):
            print(f"| {r['base']} | {r['n_betas']:,} | {r['log_z']:.2f} +- {r['std']:.2f} | {r['ess']:.1f} | "
                  f"{r['seconds']:.0f} |", flush=True)
    return 0


def main(argv=None):
    return cli.run_script(parse_args, cli.checked("dbm_ais_base.py", run), argv)


if __name__ == "__main__":
    sys.exit(main())
