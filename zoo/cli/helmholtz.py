"""`zoo train helmholtz`: the Helmholtz machine's arguments and builder for the run manager (`zoo.cli.train`)."""
from zoo.cli.args import positive_int
from zoo.cli.family import Family


class HelmholtzFamily(Family):
    name = "helmholtz"
    help = "Helmholtz machine (SBN, DARN or NADE layers) trained by reweighted wake-sleep"
    description = ("Train a Helmholtz machine, a generative stack p and an inference stack q of binary layers, by "
                   "reweighted wake-sleep with K samples from q (Bornschein & Bengio 2015), and save it as a model "
                   "folder (model.keras, saved_model/, card.json, samples.png), with TensorBoard logs of the "
                   "K-sample bound on the validation split. Measure it with zoo eval (importance sampling).")
    epilog = ("example: zoo train helmholtz --dataset binarized_mnist --layers 200 200 10 --k 10 --epochs 100 "
              "--lr 0.001 --out models/rws-sbn --seed 0")

    lr = 1e-3  # Adam's
    q_updates = True  # the --q-update option (a BiHM has one objective for p and q)

    def add_arguments(self, parser):
        model = parser.add_argument_group("model")
        model.add_argument("--layers", type=positive_int, nargs="+", default=[200, 200, 10], metavar="N",
                           help="hidden layer sizes from the data up (default: 200 200 10)")
        model.add_argument("--p-layers", choices=("sbn", "darn", "nade"), default="sbn",
                           help="generative layer type; the top prior of 'sbn' is a factorised Bernoulli "
                                "(default: %(default)s)")
        model.add_argument("--q-layers", choices=("sbn", "darn", "nade"), default="sbn",
                           help="inference layer type (default: %(default)s)")
        model.add_argument("--nade-hidden", type=positive_int, metavar="H",
                           help="hidden units of each NADE layer (default: as many as its units)")
        algo = parser.add_argument_group("training")
        algo.add_argument("--k", type=positive_int, default=10, help="samples from q per example (default: %(default)s)")
        if self.q_updates:
            algo.add_argument("--q-update", choices=("wake", "sleep", "both"), default="both",
                              help="q's update: the reweighted wake phase, the sleep phase on dreams from p, or "
                                   "their sum (default: %(default)s)")

    def build(self, args, dataset):
        from zoo.models import HelmholtzMachine

        return HelmholtzMachine(args.layers, p_layers=args.p_layers, q_layers=args.q_layers, k=args.k,
                                q_update=args.q_update, nade_hidden=args.nade_hidden, n_visible=dataset.n_features,
                                seed=args.seed)


FAMILY = HelmholtzFamily()


class BiHMFamily(HelmholtzFamily):
    name = "bihm"
    help = "bidirectional Helmholtz machine: p* the normalised geometric mean of p and q"
    description = ("Train a bidirectional Helmholtz machine (Bornschein et al. 2016), p* proportional to the "
                   "geometric mean of a generative stack p and an inference stack q, on the bound log p~*(x) with K "
                   "samples from q, and save it as a model folder. Measure it with zoo eval (log p~*(x) by "
                   "importance sampling, log Z from samples of p).")
    epilog = ("example: zoo train bihm --dataset binarized_mnist --layers 300 200 100 75 50 35 30 25 20 15 10 10 "
              "--k 10 --epochs 100 --lr 0.001 --out models/bihm --seed 0")
    q_updates = False

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.add_argument("--sample-steps", type=positive_int, default=250, metavar="N",
                            help="sweeps of p*'s chain behind samples.png (default: %(default)s; zoo sample --steps "
                                 "draws more later)")

    def samples(self, args, model, n, seed):
        return model.sample(n, seed=seed, n_steps=args.sample_steps)

    def build(self, args, dataset):
        from zoo.models import BiHM

        return BiHM(args.layers, p_layers=args.p_layers, q_layers=args.q_layers, k=args.k,
                    nade_hidden=args.nade_hidden, n_visible=dataset.n_features, seed=args.seed)


BIHM_FAMILY = BiHMFamily()
