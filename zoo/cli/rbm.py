"""`zoo train rbm`: the RBM family's arguments and builder for the run manager (`zoo.cli.train`)."""
from zoo.cli.args import nonnegative_float, positive_int
from zoo.cli.family import Family, add_centering, add_log_z_every, add_tempering, log_z_monitor


class RBMFamily(Family):
    name = "rbm"
    lr, momentum = 0.05, 0.0  # SGD's (the shared --lr, --lr-final and --momentum)
    help = "restricted Boltzmann machine (CD-k, persistent CD, parallel tempering)"
    description = ("Train an RBM with CD-k, persistent CD, fast weights or parallel tempering and save it as a model "
                   "folder (model.keras, saved_model/, card.json, samples.png, filters.png), with TensorBoard logs.")
    epilog = ("example: zoo train rbm --dataset binarized_mnist --n-hidden 500 --cd-k 1 --persistent "
              "--epochs 100 --batch-size 100 --lr 0.05 --out models/rbm500 --seed 0")

    def add_arguments(self, parser):
        model = parser.add_argument_group("model")
        model.add_argument("--n-hidden", type=positive_int, default=500, help="hidden units (default: %(default)s)")
        model.add_argument("--visible", default="bernoulli",
                           help="bernoulli, gaussian or softmax (default: %(default)s)")
        model.add_argument("--hidden", default="bernoulli", help="bernoulli or softmax (default: %(default)s)")
        model.add_argument("--group-size", type=positive_int, help="softmax hidden units: units per one-hot group")
        model.add_argument("--sigma", type=float, default=1.0, help="gaussian visible units: standard deviation")
        model.add_argument("--learn-sigma", action="store_true", help="gaussian visible units: learn sigma")
        model.add_argument("--allow-nonbinary", action="store_true",
                           help="bernoulli visible units: accept probabilities in [0, 1] as data")
        algo = parser.add_argument_group("training")
        algo.add_argument("--cd-k", type=positive_int, default=1, help="Gibbs steps per update (default: %(default)s)")
        algo.add_argument("--cd-k-final", type=positive_int, help="raise k linearly to this by the last epoch")
        algo.add_argument("--persistent", action="store_true", help="persistent CD (fantasy particles)")
        algo.add_argument("--n-chains", type=positive_int, default=100, help="persistent chains (default: %(default)s)")
        algo.add_argument("--fast-lr", type=nonnegative_float, default=0.0,
                          help="fast-weights PCD: learning rate of the fast weights the chains add to the model's "
                               "(default: 0, plain PCD; needs --persistent)")
        algo.add_argument("--fast-decay", type=nonnegative_float, default=0.95,
                          help="fast-weights PCD: factor the fast weights shrink by every update "
                               "(default: %(default)s)")
        add_tempering(algo, "plain PCD; needs --persistent")
        add_centering(algo, "the visible and hidden units")
        algo.add_argument("--l2", type=nonnegative_float, default=0.0, help="weight decay (default: %(default)s)")
        algo.add_argument("--sparsity-target", type=nonnegative_float, default=0.1, help="(default: %(default)s)")
        algo.add_argument("--sparsity-cost", type=nonnegative_float, default=0.0, help="(default: %(default)s)")
        algo.add_argument("--dropout", type=nonnegative_float, default=0.0, help="hidden dropout rate")
        algo.add_argument("--max-norm", type=nonnegative_float, help="bound on each hidden unit's weight norm")
        algo.add_argument("--sample-visible", action="store_true",
                          help="use sampled visible states, not probabilities, for the negative phase")
        algo.add_argument("--no-visible-bias-init", action="store_true",
                          help="start visible biases at zero instead of the data's means")

        add_log_z_every(parser.add_argument_group("monitoring"), "RAISE, and the validation NLL bracket")

    def build(self, args, dataset):
        from zoo import units
        from zoo.models import RBM

        visible_kwargs = {}
        if args.visible == "gaussian":
            visible_kwargs = {"sigma": args.sigma, "learn_sigma": args.learn_sigma}
        elif args.visible == "bernoulli":
            visible_kwargs = {"allow_nonbinary": args.allow_nonbinary}
        hidden_kwargs = {"group_size": args.group_size} if args.hidden in ("softmax", "multinomial") else {}
        visible = units.get(args.visible).__class__(**visible_kwargs)
        hidden = units.get(args.hidden).__class__(**hidden_kwargs)
        return RBM(args.n_hidden, visible=visible, hidden=hidden, n_visible=dataset.n_features, cd_k=args.cd_k,
                   persistent=args.persistent, n_chains=args.n_chains, fast_lr=args.fast_lr,
                   fast_decay=args.fast_decay, n_temperatures=args.temperatures, min_beta=args.min_beta,
                   centering=args.centering, centering_rate=args.centering_rate, l2=args.l2,
                   sparsity_target=args.sparsity_target, sparsity_cost=args.sparsity_cost, dropout=args.dropout,
                   max_norm=args.max_norm, sample_visible=args.sample_visible,
                   visible_bias_init="zeros" if args.no_visible_bias_init else "data", seed=args.seed)

    def callbacks(self, args, dataset, model, data):
        from zoo import training

        sample_n = min(1000, len(data.validation_x))
        callbacks = [training.FreeEnergyGap(data.monitor_train_x[:sample_n], data.validation_x[:sample_n]),
                     *log_z_monitor(args, data)]
        if args.cd_k_final is not None:
            callbacks.append(training.GibbsStepsSchedule(training.linear_steps(args.cd_k, args.cd_k_final,
                                                                               args.epochs)))
        return callbacks

    def pictures(self, args, dataset, model):
        from zoo import viz

        filters = viz.tile(viz.filters_to_images(model.kernel.numpy()), dataset.image_shape, scale_each=True)
        return {"filters.png": lambda p: viz.save_png(p, filters)}


FAMILY = RBMFamily()
