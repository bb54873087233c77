"""Swap rates of parallel tempering on a trained RBM or DBM, to choose `zoo train rbm|dbm --temperatures T
--min-beta B` before a long run: for each (T, B), a copy of the model with T temperatures evenly spaced from B to 1 runs
--rounds rounds (one sweep of every chain, then swaps) from its fresh chains, and the fraction of proposed
swaps accepted over the second half is printed with the seconds per round. Rates near 0 mean the
temperatures are too far apart; each round costs T sweeps of --n-chains chains.

    .venv/bin/python experiments/tempering_rates.py models/rbm500-bmnist --temperatures 10 20 --min-beta 0 0.5
"""
import sys
import time

import numpy as np
import tensorflow as tf

import zoo
from zoo import cli
from zoo.models import DBM, RBM


def parse_args(argv):
    """The options; cli.UsageError (one line) for a bad one."""
    parser = cli.Parser(prog="tempering_rates.py",
                        description="Swap rates of parallel tempering on a trained RBM or DBM.")
    parser.add_argument("model", help="model folder or registered name")
    parser.add_argument("--temperatures", type=int, nargs="+", default=[10, 20], metavar="T")
    parser.add_argument("--min-beta", type=float, nargs="+", default=[0.0, 0.5], metavar="B")
    parser.add_argument("--n-chains", type=int, default=100, help="chains per temperature (default 100)")
    parser.add_argument("--rounds", type=int, default=200, help="(default 200)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if min(args.temperatures) < 2:
        parser.error(f"--temperatures must be >= 2, got {args.temperatures}")
    if not all(0 <= b < 1 for b in args.min_beta):
        parser.error(f"--min-beta must be in [0, 1), got {args.min_beta}")
    if args.n_chains < 1 or args.rounds < 2:
        parser.error("--n-chains must be >= 1 and --rounds >= 2")
    return args


def swap_rate(source, n_temperatures, min_beta, n_chains, rounds, seed):
    """(fraction of proposed swaps accepted over the second half of `rounds`, seconds per round)."""
    settings = dict(n_chains=n_chains, n_temperatures=n_temperatures, min_beta=min_beta, seed=seed)
    if isinstance(source, DBM):
        model = DBM(source.hidden_sizes, visible=source.layer_units[0].kind, top=source.layer_units[-1].kind,
                    n_visible=source.n_visible, **settings)
    else:
        model = RBM(source.n_hidden, visible=source.visible_units, hidden=source.hidden_units,
                    n_visible=source.n_visible, persistent=True, **settings)
    model.set_parameters_from(source)
    one_round = tf.function(lambda key: model.tempered_sweeps(tf.constant(1), key))
    rates, start = [], None
    for i in range(rounds):
        if i == rounds // 2:
            start = time.perf_counter()
        rates.append(float(one_round(tf.constant([seed, i]))[1]))
    return float(np.mean(rates[rounds // 2:])), (time.perf_counter() - start) / (rounds - rounds // 2)


def main(argv=None):
    try:
        args = parse_args(sys.argv[1:] if argv is None else argv)
        source = zoo.load(args.model)
        if not isinstance(source, (RBM, DBM)):
            raise ValueError(f"{args.model} is a {type(source).__name__}, not an RBM or a DBM")
    except (ValueError, OSError) as exc:
        print(exc if isinstance(exc, cli.UsageError) else f"tempering_rates.py: error: {exc}", file=sys.stderr)
        return cli.EXIT_BAD_INPUT
    print(f"{args.model}: parallel tempering, {args.n_chains} chains per temperature, {args.rounds} rounds "
          f"(rate over the last {args.rounds - args.rounds // 2}), seed {args.seed}")
    print(f"{'T':>4} {'min beta':>9} {'swap rate':>10} {'ms/round':>9}")
    for t in args.temperatures:
        for b in args.min_beta:
            rate, seconds = swap_rate(source, t, b, args.n_chains, args.rounds, args.seed)
            print(f"{t:>4} {b:>9g} {rate:>10.3f} {1000 * seconds:>9.1f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
