"""`zoo train hybrid`: a deep hybrid model's arguments, semi-supervised data and builder for the run manager
(`zoo.cli.train`)."""
import sys

from zoo.cli.args import labels_per_class, nonnegative_float, nonnegative_int, positive_int
from zoo.cli.family import Family, TrainingData

GENERATIVE = ("helmholtz", "bihm", "adgm")
CLASSIFIERS = ("mlp", "cnn", "features")  # zoo.models.hybrid.CLASSIFIERS, without importing TensorFlow


class HybridFamily(Family):
    name = "hybrid"
    lr = 1e-3  # Adam's (the shared --lr and --lr-final)
    help = "deep hybrid model: a generative model and a classifier trained jointly, semi-supervised"
    description = ("Train a deep hybrid model (Kuleshov & Ermon 2017): a generative part (a Helmholtz machine, a "
                   "BiHM or an auxiliary deep generative model) and a classifier on x and the generative part's "
                   "features, on sup_weight * log p(y | x) over the labelled examples + unsup_weight * the "
                   "generative bound over all. --labels-per-class N labels a class-balanced seeded draw of the "
                   "training split (the fine-tuning protocol: its last fifth is the validation set, the test split "
                   "is never touched); the other images are unlabelled. Saved as a model folder; zoo eval gives "
                   "its test accuracy and bound.")
    epilog = ("example: zoo train hybrid --dataset mnist --dynamic-binarization --generative adgm --classifier mlp "
              "--labels-per-class 10 --sup-weight 1 --unsup-weight 1 --epochs 50 --out models/hybrid --seed 0")

    def add_arguments(self, parser):
        gen = parser.add_argument_group("generative part")
        gen.add_argument("--generative", choices=GENERATIVE, default="adgm",
                         help="its family (default: %(default)s)")
        gen.add_argument("--init-generative", metavar="MODEL",
                         help="start the generative part from a trained model of its family (folder or registered "
                              "name, e.g. rws-sbn-bmnist)")
        gen.add_argument("--layers", type=positive_int, nargs="+", default=[200, 200, 10], metavar="N",
                         help="helmholtz, bihm: hidden layer sizes from the data up (default: 200 200 10)")
        gen.add_argument("--k", type=positive_int, help="samples of the bound per example (default: 10 for "
                         "helmholtz and bihm, 1 for adgm)")
        gen.add_argument("--latent", type=positive_int, default=32, help="adgm: z's dimension (default: 32)")
        gen.add_argument("--auxiliary", type=positive_int, default=32, help="adgm: a's dimension (default: 32)")
        gen.add_argument("--class-latent", action="store_true",
                         help="adgm: the class y is a latent variable of the generative part too (Maaløe et al.'s "
                              "semi-supervised ADGM): unlabelled images are bounded with y drawn from the classifier, "
                              "which they train directly (about n_classes times the generative cost)")
        gen.add_argument("--generative-hidden", type=positive_int, nargs="+", default=[500, 500], metavar="N",
                         help="adgm: hidden layers of each of its networks (default: 500 500)")
        clf = parser.add_argument_group("classifier and objective")
        clf.add_argument("--classifier", choices=CLASSIFIERS, default="mlp",
                         help="mlp or cnn on x and the generative features, or an MLP on the features alone "
                              "(default: %(default)s)")
        clf.add_argument("--hidden", type=positive_int, nargs="+", default=[500], metavar="N",
                         help="the classifier's hidden layers (default: 500)")
        clf.add_argument("--dropout", type=nonnegative_float, default=0.0, help="on the classifier's hidden layers")
        clf.add_argument("--sup-weight", type=nonnegative_float, default=1.0, help="(default: %(default)s)")
        clf.add_argument("--unsup-weight", type=nonnegative_float, default=1.0, help="(default: %(default)s)")
        clf.add_argument("--ramp-epochs", type=nonnegative_int, default=0,
                         help="raise the unsup weight linearly from 0 over these epochs (default: 0, at once)")
        self.add_label_arguments(parser)

    def add_label_arguments(self, parser):
        """The labelled draw and each batch's share of it (the semi-supervised families' common options)."""
        labels = parser.add_argument_group("labels")
        labels.add_argument("--labels-per-class", type=labels_per_class, default="all", metavar="N",
                            help="labelled images per class, or all (default: all)")
        labels.add_argument("--label-seed", type=nonnegative_int, default=0,
                            help="seed of the draw of labelled images (default: %(default)s)")
        labels.add_argument("--labelled-per-batch", type=positive_int,
                            help="labelled rows in each batch (default: half the batch, all of it with all labels)")

    # -- the data: labelled draws by the fine-tuning protocol ---------------------------------------------
    def labelled(self, args, dataset):
        """(indices of the labelled training rows, validation x, validation y)."""
        import numpy as np

        from zoo import data, finetune

        train = dataset.train
        if train.y is None or dataset.n_classes is None:
            raise ValueError(f"dataset {dataset.name!r} has no labels: a hybrid needs some")
        grey = args.dynamic_binarization
        if args.labels_per_class == "all":
            validation = dataset.validation
            x = data.bernoulli_samples([validation.x])[0] if grey else validation.x
            return np.arange(train.n), x, validation.y
        rows, held = finetune.draw_labelled(train.y, args.labels_per_class, args.label_seed, dataset.n_classes)
        x = (data.bernoulli_samples([train.x])[0] if grey else train.x)[held]
        if not len(held):
            raise ValueError("--labels-per-class 1 leaves no labelled image for validation: use 2 or more")
        return rows, x, train.y[held]

    def labelled_per_batch(self, args, n_labelled):
        if args.labelled_per_batch is not None:
            return args.labelled_per_batch
        return args.batch_size if args.labels_per_class == "all" else min(args.batch_size // 2, n_labelled)

    def steps_per_epoch(self, args, dataset):
        """Batches per epoch: the labelled rows at --batch-size a batch when every row of a batch is labelled,
        else the whole training split at its unlabelled share of each batch."""
        n_labelled = len(self._labelled(args, dataset)[0])
        per_batch = self.labelled_per_batch(args, n_labelled)
        if per_batch == args.batch_size:
            return n_labelled // per_batch
        return dataset.train.n // (args.batch_size - per_batch)

    def _labelled(self, args, dataset):
        if getattr(self, "_cache", (None,))[0] is not args:
            self._cache = (args, self.labelled(args, dataset))
        return self._cache[1]

    def training_data(self, args, dataset, model):
        from zoo import data

        rows, validation_x, validation_y = self._labelled(args, dataset)
        per_batch = self.labelled_per_batch(args, len(rows))
        train_x = dataset.train.x if args.dynamic_binarization else model.validate_data(dataset.train.x)
        x = data.semi_supervised_batches(train_x, dataset.train.y, rows, args.batch_size, per_batch, seed=args.seed,
                                         dynamic_binarization=args.dynamic_binarization)
        unlabelled = "no unlabelled rows" if per_batch == args.batch_size else f"{dataset.train.n} unlabelled"
        print(f"zoo: {len(rows)} labelled training images ({per_batch} a batch), {len(validation_y)} labelled for "
              f"validation, {unlabelled}", file=sys.stderr)
        return TrainingData(x, None, validation_x, model.validate_data(validation_x), dataset.binarization
                            if not args.dynamic_binarization else "dynamic (fresh Bernoulli sample every epoch)",
                            validation_y=validation_y)

    def callbacks(self, args, dataset, model, data):
        """The weights' schedule and the accuracy on 2,000 unlabelled training images (fixed, binarised once; none
        with all labels)."""
        import numpy as np

        from zoo import training
        from zoo import data as data_lib

        unlabelled = np.setdiff1d(np.arange(dataset.train.n), self._labelled(args, dataset)[0])
        if not len(unlabelled):  # all labels: no image whose label training does not see
            return [training.HybridMonitor()]
        rows = np.random.default_rng(0).permutation(unlabelled)[:2000]
        x = dataset.train.x[rows]
        x = data_lib.bernoulli_samples([x])[0] if args.dynamic_binarization else x
        return [training.HybridMonitor(model.validate_data(x), dataset.train.y[rows])]

    # -- the model ----------------------------------------------------------------------------------------
    def build(self, args, dataset):
        from zoo import data, export, hub
        from zoo.models import AuxiliaryDeepGenerativeModel, BiHM, HelmholtzMachine, HybridModel

        kinds = {"helmholtz": HelmholtzMachine, "bihm": BiHM, "adgm": AuxiliaryDeepGenerativeModel}
        if args.class_latent and (args.generative != "adgm" or args.init_generative):
            raise ValueError("--class-latent builds a new adgm: use it with --generative adgm and no --init-generative")
        if args.init_generative:
            generative, _ = export.load_folder(hub.resolve(args.init_generative))
            if type(generative) is not kinds[args.generative]:
                raise ValueError(f"--init-generative {args.init_generative} is a {type(generative).__name__}, not "
                                 f"a {kinds[args.generative].__name__} (--generative {args.generative})")
        elif args.generative == "adgm":
            generative = AuxiliaryDeepGenerativeModel(
                args.latent, args.auxiliary, args.generative_hidden, k=args.k or 1,
                n_classes=dataset.n_classes if args.class_latent else None, n_visible=dataset.n_features,
                seed=args.seed)
        else:
            extra = {"q_update": "both"} if args.generative == "helmholtz" else {}
            generative = kinds[args.generative](args.layers, k=args.k or 10, n_visible=dataset.n_features,
                                                seed=args.seed, **extra)
        if not args.init_generative:  # the pixels' base rate, from the data the model is measured on
            x = data.bernoulli_samples([dataset.train.x])[0] if args.dynamic_binarization else dataset.train.x
            generative.prepare_visible_bias(generative.validate_data(x))
        ramp = args.ramp_epochs * self.steps_per_epoch(args, dataset)
        return HybridModel(generative, n_classes=dataset.n_classes, classifier=args.classifier, hidden=args.hidden,
                           image_shape=dataset.image_shape, sup_weight=args.sup_weight,
                           unsup_weight=args.unsup_weight, ramp_steps=ramp, dropout=args.dropout, seed=args.seed)


FAMILY = HybridFamily()
