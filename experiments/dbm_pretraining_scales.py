"""How the first modified RBM of a DBM's pretraining (784-500, doubled bottom-up input, CD-1, lr 0.05, weight
cost 0.001, MNIST binarised afresh every epoch) grows its parameters under the momentum and the negative phase's
visible states: the check behind the pretraining defaults of `zoo train dbm` (docs/dbm.md).

    python experiments/dbm_pretraining_scales.py --epochs 30
    python experiments/dbm_pretraining_scales.py --stages models/dbm-500-1000-bmnist.pretrain --ais-betas 3000

Per setting: the mean and largest |W|, the range of the hidden biases, the largest visible bias and the mean free
energy of the last epoch. Sharp parameters (|W| of several units, biases of tens) make the assembled DBM's Gibbs
chains, and so AIS, stop mixing. With --stages (the `<out>.pretrain` folder of `zoo train dbm --pretrain-epochs`):
the DBM assembled from those RBMs before joint training (`zoo.DBM.from_rbms`), its log Z by forward and reverse AIS
(100 chains, 50 reverse examples, 1,000 sweeps of burn-in) and its test bound's bracket on binarized_mnist.
"""
import sys
import time

import numpy as np

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
    parser.add_argument("--ais-betas", type=positive_int, default=3000, help="with --stages (default: %(default)s)")
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


def assemble_and_measure(stages, n_betas, seed):
    from pathlib import Path

    from zoo import evaluation, export
    from zoo.models import DBM

    folders = sorted(Path(stages).glob("rbm[0-9]*/"), key=lambda p: int(p.name[3:]))
    if not folders:
        print(f"dbm_pretraining_scales.py: no rbm1, rbm2, ... folders in {stages}", file=sys.stderr)
        return cli.EXIT_BAD_INPUT
    dbm = DBM.from_rbms([export.load_folder(folder)[0] for folder in folders])
    result = evaluation.evaluate_energy_model(dbm, "binarized_mnist", n_betas=n_betas, n_chains=100,
                                              reverse_examples=50, burn_in=1000, seed=seed)
    print(f"{dbm.describe()} from {stages}: log Z forward {result.log_z_forward:.2f}, reverse "
          f"{result.log_z_reverse:.2f}; test bound bracket [{result.nll['test']['lower']:.2f}, "
          f"{result.nll['test']['upper']:.2f}] nats ({n_betas} temperatures)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
