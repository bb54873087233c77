"""How the first modified RBM of a DBM's pretraining (784-500, doubled bottom-up input, CD-1, lr 0.05, weight
cost 0.001, MNIST binarised afresh every epoch) grows its parameters under the momentum and the negative phase's
visible states: the check behind the pretraining defaults of `zoo train dbm` (docs/dbm.md).

    python experiments/dbm_pretraining_scales.py --epochs 30
    python experiments/dbm_pretraining_scales.py --stages models/dbm-500-1000-bmnist.pretrain --ais-betas 1000 5000

Per setting: the mean and largest |W|, the range of the hidden biases, the largest visible bias and the mean free
energy of the last epoch. Sharp parameters (|W| of several units, biases of tens) make the assembled DBM's Gibbs
chains, and so AIS, stop mixing. With --stages (the `<out>.pretrain` folder of `zoo train dbm --pretrain-epochs`):
the DBM assembled from those RBMs before joint training (`zoo.DBM.from_rbms`) under two rules for the biases of a
layer between two RBMs (the lower RBM's hidden biases alone, this code's rule until issue 32; the mean of those and
the upper RBM's visible biases, Salakhutdinov's and `from_rbms`' now) and, for each, the mean-field free energy of
the binarized_mnist test split, forward AIS's log Z (50 chains) at each of --ais-betas with its ESS, the test bound
it gives at the longest schedule and the layers' mean activations under mean field. A quick look: short schedules
and few chains underestimate log Z (`zoo eval` says whether an estimate converged).
"""
import sys
import time

import numpy as np

from dbm_diagnostics import quick_log_z
from zoo import cli, data
from zoo.cli.args import nonnegative_int, positive_int

SETTINGS = [("momentum 0.9, mean reconstructions", 0.9, False), ("momentum 0.5, mean reconstructions", 0.5, False),
            ("momentum 0.9, sampled reconstructions", 0.9, True), ("momentum 0.5, sampled reconstructions", 0.5, True)]


def main(argv=None):
    import keras

    from zoo.models.dbm import PretrainingRBM

    parser = cli.Parser(prog="dbm_pretraining_scales.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=positive_int, default=30, help="(default: %(default)s)")
    parser.add_argument("--seed", type=nonnegative_int, default=0)
    parser.add_argument("--stages", metavar="DIR", help="measure the DBM assembled from DIR/rbm1, DIR/rbm2, ... instead")
    parser.add_argument("--ais-betas", type=positive_int, nargs="+", default=[1000, 5000],
                        help="with --stages: forward AIS's schedule lengths (default: %(default)s)")
    try:
        args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    except cli.UsageError as error:
        print(error, file=sys.stderr)
        return cli.EXIT_BAD_INPUT
    if args.stages:
        return assemble_and_measure(args.stages, args.ais_betas, args.seed)
    x = data.load("mnist").train.x
    print(f"| setting ({args.epochs} epochs) | mean abs W | max abs W | hidden biases | max visible bias | "
          "free energy | seconds |\n|---|---:|---:|---|---:|---:|---:|")
    for name, momentum, sampled in SETTINGS:
        rbm = PretrainingRBM(500, n_visible=784, up_scale=2.0, l2=0.001, sample_visible=sampled, seed=args.seed)
        rbm.compile(keras.optimizers.SGD(learning_rate=0.05, momentum=momentum))
        rbm.prepare_visible_bias(x)
        start = time.time()
        history = rbm.fit(data.Split(x).pipeline(100, seed=args.seed, dynamic_binarization=True), epochs=args.epochs,
                          verbose=0)
        w, b, c = (np.abs(rbm.kernel.numpy()), rbm.visible_bias.numpy(), rbm.hidden_bias.numpy())
        print(f"| {name} | {w.mean():.3f} | {w.max():.2f} | [{c.min():.1f}, {c.max():.1f}] | {b.max():.2f} | "
              f"{history.history['free_energy'][-1]:.0f} | {time.time() - start:.0f} |", flush=True)
    return 0


def assemble_and_measure(stages, schedules, seed):
    from pathlib import Path

    from zoo import export
    from zoo.models import DBM

    folders = sorted(Path(stages).glob("rbm[0-9]*/"), key=lambda p: int(p.name[3:]))
    if len(folders) < 2:
        print(f"dbm_pretraining_scales.py: no rbm1, rbm2, ... folders in {stages} (two at least)", file=sys.stderr)
        return cli.EXIT_BAD_INPUT
    rbms = [export.load_folder(folder)[0] for folder in folders]
    split = data.load("binarized_mnist")
    lower_rule = [r.hidden_bias.numpy() for r in rbms[:-1]]
    for rule in ("the lower RBM's hidden biases", "the mean of both RBMs' biases (from_rbms)"):
        dbm = DBM.from_rbms(rbms)
        if rule.startswith("the lower"):
            for l, bias in enumerate(lower_rule, 1):
                dbm.biases[l].assign(bias)
        start = time.time()
        quick = quick_log_z(dbm, split, schedules, n_chains=50, seed=seed)
        active = [m.mean() for m in dbm.mean_field(split.test.x[:1000])]
        print(f"{dbm.describe()} from {stages}, a middle layer's biases {rule}: mean-field free energy "
              f"{quick['free_energy']:.1f}; log Z " + ", ".join(f"{r['log_z']:.1f} (ESS {r['ess']:.1f}, "
                                                               f"{r['n_betas']} temperatures)" for r in quick["log_z"])
              + f"; test bound {quick['free_energy'] + quick['log_z'][-1]['log_z']:.1f} nats; hidden layers on "
              + ", ".join(f"{a:.3f}" for a in active) + f" ({time.time() - start:.0f} s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
