"""`zoo train dbm`: the deep Boltzmann machine's arguments, greedy pretraining and builder for the run manager
(`zoo.cli.train`)."""
import sys
from pathlib import Path

from zoo.cli.args import nonnegative_float, positive_int
from zoo.cli.family import Family, add_centering, add_log_z_every, add_tempering, log_z_monitor, optimizer


class DBMFamily(Family):
    name = "dbm"
    lr, momentum = 0.001, 0.9  # SGD's (the shared --lr, --lr-final and --momentum)
    help = "deep Boltzmann machine (mean-field + persistent chains, greedy pretraining)"
    description = ("Train a deep Boltzmann machine of any depth (Salakhutdinov & Hinton 2009): the positive phase "
                   "by mean-field, the negative by persistent Gibbs chains in all layers; optionally first a greedy "
                   "stack of modified RBMs (--pretrain-epochs), each saved in <out>.pretrain/ so that an "
                   "interrupted run resumes. Saved as a model folder (model.keras, saved_model/, card.json, "
                   "samples.png, filters.png) with TensorBoard logs. Measure it with zoo eval (AIS both ways, the "
                   "mean-field bound).")
    epilog = ("example: zoo train dbm --dataset mnist --dynamic-binarization --layers 500 1000 --pretrain-epochs "
              "100 200 --epochs 300 --lr 0.001 --lr-final 0.0001 --momentum 0.9 --l2 0.0002 --sparsity-targets 0.2 "
              "0.1 --sparsity-cost 0.001 --out models/dbm --seed 0")

    def add_arguments(self, parser):
        model = parser.add_argument_group("model")
        model.add_argument("--layers", type=positive_int, nargs="+", default=[500, 1000], metavar="N",
                           help="hidden layer sizes from the data up (default: 500 1000)")
        model.add_argument("--visible", choices=("bernoulli", "gaussian"), default="bernoulli",
                           help="visible units (default: %(default)s)")
        model.add_argument("--top", choices=("bernoulli", "softmax"), default="bernoulli",
                           help="top layer units (default: %(default)s)")
        algo = parser.add_argument_group("training")
        algo.add_argument("--n-chains", type=positive_int, default=100,
                          help="persistent chains (default: %(default)s)")
        algo.add_argument("--gibbs-steps", type=positive_int, default=5,
                          help="Gibbs sweeps of the chains per update (default: %(default)s)")
        add_tempering(algo, "plain Gibbs chains")
        algo.add_argument("--mean-field-steps", type=positive_int, default=10,
                          help="mean-field rounds per update at most (default: %(default)s)")
        algo.add_argument("--mean-field-tol", type=nonnegative_float, default=1e-7,
                          help="stop mean-field when no layer moves more on average (default: %(default)s)")
        algo.add_argument("--l2", type=nonnegative_float, default=0.0, help="weight decay (default: %(default)s)")
        algo.add_argument("--max-norm", type=nonnegative_float, help="bound on each unit's incoming weight norm")
        algo.add_argument("--sparsity-targets", type=nonnegative_float, nargs="+", metavar="P",
                          help="target mean activation of each hidden layer")
        algo.add_argument("--sparsity-cost", type=nonnegative_float, default=0.0, help="(default: %(default)s)")
        add_centering(algo, "every layer (v and the mean-field posterior of the hidden ones)")
        pre = parser.add_argument_group("greedy pretraining (modified RBMs; off unless --pretrain-epochs)")
        pre.add_argument("--pretrain-epochs", type=positive_int, nargs="+", metavar="E",
                         help="epochs of each layer's RBM, one number per hidden layer")
        pre.add_argument("--pretrain-lr", type=nonnegative_float, default=0.05, help="(default: %(default)s)")
        pre.add_argument("--pretrain-lr-final", type=nonnegative_float,
                         help="decay each RBM's learning rate linearly to this")
        pre.add_argument("--pretrain-momentum", type=nonnegative_float, default=0.5, help="(default: %(default)s; "
                         "0.9 at a learning rate of 0.05 drives the doubled RBMs' weights and biases up, docs/dbm.md)")
        pre.add_argument("--pretrain-negative-visible", choices=("sample", "mean"), default="sample",
                         help="the negative phase's visible states: a binary sample of the reconstruction (the "
                              "MATLAB code's) or its probabilities (default: %(default)s)")
        pre.add_argument("--pretrain-l2", type=nonnegative_float, default=0.001, help="(default: %(default)s)")
        pre.add_argument("--pretrain-cd-k-final", type=positive_int, default=1, metavar="K",
                         help="RBMs above the first: CD-k with k rising linearly from 1 to K (default: 1)")
        add_log_z_every(parser.add_argument_group("monitoring"), "reverse AIS, and the validation bound's bracket")

    def build(self, args, dataset):
        from zoo.models import DBM

        if args.pretrain_epochs and len(args.pretrain_epochs) != len(args.layers):
            raise ValueError(f"--pretrain-epochs needs one number per hidden layer ({len(args.layers)}), got "
                             f"{len(args.pretrain_epochs)}")
        settings = dict(n_chains=args.n_chains, gibbs_steps=args.gibbs_steps, n_temperatures=args.temperatures,
                        min_beta=args.min_beta, mean_field_steps=args.mean_field_steps,
                        mean_field_tol=args.mean_field_tol, l2=args.l2, max_norm=args.max_norm,
                        sparsity_targets=args.sparsity_targets, sparsity_cost=args.sparsity_cost,
                        centering=args.centering, centering_rate=args.centering_rate, seed=args.seed)
        if not args.pretrain_epochs:
            return DBM(args.layers, visible=args.visible, top=args.top, n_visible=dataset.n_features, **settings)
        DBM(args.layers, visible=args.visible, top=args.top, **settings)  # bad settings fail before the RBMs train
        rbms = pretrain(args, dataset)
        if args.seed is not None:  # the joint stage draws the same whether the stages were trained or loaded
            import keras

            keras.utils.set_random_seed(args.seed)
        return DBM.from_rbms(rbms, **settings)

    def callbacks(self, args, dataset, model, data):
        return log_z_monitor(args, data)

    def pictures(self, args, dataset, model):
        from zoo import viz

        filters = viz.tile(viz.filters_to_images(model.kernels[0].numpy()), dataset.image_shape, scale_each=True)
        return {"filters.png": lambda p: viz.save_png(p, filters)}


def pretrain(args, dataset):
    """The greedy stack of `args.layers` RBMs (`zoo.training.pretraining_rbms`), each trained on the doubled
    up-pass probabilities of the one below, binarised afresh every epoch (the first on the data, dynamically
    binarised with --dynamic-binarization), and saved to `<out>.pretrain/rbm<i>`; a stage whose folder exists is
    loaded instead of trained, and an interrupted stage resumes from its backup (the run manager's `fit_stage`)."""
    from zoo import data, distributed, export, training
    from zoo.cli.train import fit_stage

    folder = Path(args.out).with_name(Path(args.out).name + ".pretrain")
    rbms = training.pretraining_rbms(args.layers, dataset.n_features, visible=args.visible, top=args.top,
                                     l2=args.pretrain_l2, sample_visible=args.pretrain_negative_visible == "sample",
                                     seed=args.seed)
    train_x, validation_x = dataset.train.x, dataset.validation.x
    grey = args.dynamic_binarization  # probabilities to binarise afresh every epoch
    for i, (rbm, epochs) in enumerate(zip(rbms, args.pretrain_epochs)):
        stage = folder / f"rbm{i + 1}"
        if (stage / "model.keras").is_file():
            print(f"zoo: pretraining stage {i + 1} found in {stage}", file=sys.stderr)
            rbms[i], _ = export.load_folder(stage)
        else:
            print(f"zoo: pretraining the RBM of layer {i + 1} ({rbm.n_visible}-{rbm.n_hidden}, {epochs} epochs)",
                  file=sys.stderr)
            steps = epochs * -(-len(train_x) // args.batch_size)
            rbm.compile(optimizer(args.pretrain_lr, args.pretrain_lr_final, steps, momentum=args.pretrain_momentum))
            callbacks = []
            if i and args.pretrain_cd_k_final > 1:
                callbacks.append(training.GibbsStepsSchedule(training.linear_steps(1, args.pretrain_cd_k_final,
                                                                                   epochs)))
            if grey:
                rbm.prepare_visible_bias(train_x)
                x = data.Split(train_x).pipeline(args.batch_size, seed=args.seed, dynamic_binarization=True)
                validation = data.bernoulli_samples([validation_x])[0]
            else:
                x, validation = rbm.validate_data(train_x), rbm.validate_data(validation_x)
            fit_stage(rbm, x, folder / f"rbm{i + 1}.backup", epochs, batch_size=None if grey else args.batch_size,
                      validation_data=validation[:1000], callbacks=callbacks, verbose=args.verbose, seed=args.seed)
            if distributed.is_chief(rbm.distribute_strategy):
                export.save(rbm, stage, overwrite=True)
        if i + 1 < len(rbms):  # the next RBM's data: this one's up-pass probabilities of one binary sample
            if grey:
                train_x, validation_x = data.bernoulli_samples([train_x, validation_x])
            train_x, validation_x = rbms[i].transform(train_x), rbms[i].transform(validation_x)
            grey = True
    return rbms


FAMILY = DBMFamily()
