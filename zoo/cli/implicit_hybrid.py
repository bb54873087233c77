"""`zoo train implicit-hybrid`: the implicit-density hybrid's arguments (the reference script's settings under this
project's names) and builder; its semi-supervised data is the explicit hybrid's (`zoo.cli.hybrid`)."""
import argparse

from zoo.cli.args import nonnegative_float, nonnegative_int, positive_int
from zoo.cli.family import learning_rate
from zoo.cli.hybrid import HybridFamily

ARCHITECTURES = ("mlp", "cnn")  # zoo.models.implicit_hybrid.ARCHITECTURES, without importing TensorFlow
DISCRIMINATOR = {"mlp": [1000, 500, 250, 250, 250], "cnn": [64, 128, 256]}


def probability(text):
    """An argparse type: a number in [0, 1)."""
    value = nonnegative_float(text)
    if value >= 1:
        raise argparse.ArgumentTypeError(f"expected a probability in [0, 1), got {text!r}")
    return value


class ImplicitHybridFamily(HybridFamily):
    name = "implicit-hybrid"
    lr = 3e-4  # Adam's, beta_1 0.5, for each player
    dataset, batch_size = "mnist", 200
    help = "implicit-density hybrid: ALI whose joint discriminator classifies, with a consistency term"
    description = ("Train an implicit-density deep hybrid (Kuleshov & Ermon 2017): a generator G(z), an encoder "
                   "E(x) and a joint discriminator D(x, z) trained by adversarially learned inference, D's K class "
                   "logits being the classifier p(y | x) = softmax D(x, E(x)) (their logsumexp D's real score), "
                   "with a Pi-model consistency term between two noisy passes. G and E match D's features. "
                   "--labels-per-class N labels a class-balanced seeded draw of the training split (its last fifth "
                   "is the validation set, the test split is never touched); the other images are unlabelled. An "
                   "average of the weights classifies. zoo eval gives its test accuracy (it has no likelihood).")
    epilog = ("example: zoo train implicit-hybrid --labels-per-class 10 --consistency-weight 10 --translate 2 "
              "--epochs 100 --out models/ali-hybrid --seed 0")

    def add_arguments(self, parser):
        net = parser.add_argument_group("networks")
        net.add_argument("--architecture", choices=ARCHITECTURES, default="mlp",
                         help="dense networks, or convolutional ones on the images (default: %(default)s)")
        net.add_argument("--latent", type=positive_int, default=100, help="z's dimension (default: %(default)s)")
        net.add_argument("--discriminator-hidden", type=positive_int, nargs="+", metavar="N",
                         help="D's x branch: hidden layers (mlp; default: 1000 500 250 250 250) or the widths of "
                              "its three convolutional stages (cnn; default: 64 128 256)")
        net.add_argument("--latent-hidden", type=positive_int, nargs="+", default=[500, 250], metavar="N",
                         help="D's z branch (default: 500 250)")
        net.add_argument("--generator-hidden", type=positive_int, nargs="+", default=[500, 500], metavar="N",
                         help="mlp G (default: 500 500)")
        net.add_argument("--encoder-hidden", type=positive_int, nargs="+", default=[500, 500], metavar="N",
                         help="mlp E (default: 500 500)")
        net.add_argument("--input-noise", type=nonnegative_float, default=0.3,
                         help="std of the Gaussian noise on D's input in training (default: %(default)s)")
        net.add_argument("--noise", type=nonnegative_float, default=0.5,
                         help="std of the Gaussian noise on D's hidden layers (default: %(default)s)")
        net.add_argument("--weight-norm", action="store_true",
                         help="weight-normalised dense layers in D, started from the data (Salimans & Kingma)")
        net.add_argument("--input-dropout", type=probability, default=0.0, help="dropout on D's input")
        net.add_argument("--dropout", type=probability, default=0.0, help="dropout in D's x branch")
        obj = parser.add_argument_group("objective")
        obj.add_argument("--supervised-weight", type=nonnegative_float, default=1.0, help="(default: %(default)s)")
        obj.add_argument("--unlabelled-weight", type=nonnegative_float, default=1.0,
                         help="of the unlabelled terms, GAN and consistency (default: %(default)s)")
        obj.add_argument("--consistency-weight", type=nonnegative_float, default=0.0,
                         help="w: the Pi-model consistency term's weight after its ramp (default: 0, off)")
        obj.add_argument("--consistency-ramp-epochs", type=nonnegative_int, default=30,
                         help="w rises as exp(-5 (1 - t/T)^2) over these epochs (default: %(default)s)")
        obj.add_argument("--no-ali", dest="adversarial", action="store_false",
                         help="no GAN term and no generator or encoder updates: the classifier alone, or with "
                              "the consistency term")
        obj.add_argument("--translate", type=nonnegative_int, default=0, metavar="P",
                         help="random translations of up to P pixels for the consistency passes (default: 0)")
        obj.add_argument("--ema-decay", type=probability, default=0.999,
                         help="of the weight average that classifies (default: %(default)s)")
        obj.add_argument("--decay-epochs", type=nonnegative_int, metavar="N",
                         help="the learning rate decays linearly to --lr-final (default 0) over the last N epochs "
                              "(default: a third of --epochs)")
        self.add_label_arguments(parser)

    def compile(self, args, model, steps):
        """Adam (beta_1 0.5) for D, a copy for G and E: --lr, then down to --lr-final over the last
        --decay-epochs."""
        import keras

        from zoo.models.base import HoldThenDecay

        decay = args.epochs // 3 if args.decay_epochs is None else args.decay_epochs
        if decay > args.epochs:
            raise ValueError(f"--decay-epochs {decay} is more than --epochs {args.epochs}")
        decay_steps = steps * decay // args.epochs
        lr_final = 0.0 if args.lr_final is None else args.lr_final
        rate = HoldThenDecay(args.lr, lr_final, steps - decay_steps, decay_steps) if decay_steps else \
            learning_rate(args.lr, None, steps)
        model.compile(keras.optimizers.Adam(rate, beta_1=0.5))

    def build(self, args, dataset):
        import numpy as np

        from zoo.models import ImplicitHybrid

        if dataset.n_classes is None:
            raise ValueError(f"dataset {dataset.name!r} has no labels: an implicit hybrid needs some")
        steps = self.steps_per_epoch(args, dataset)
        model = ImplicitHybrid(
            dataset.n_features, n_classes=dataset.n_classes, image_shape=dataset.image_shape,
            architecture=args.architecture, n_latent=args.latent,
            discriminator_hidden=args.discriminator_hidden or DISCRIMINATOR[args.architecture],
            latent_hidden=args.latent_hidden, generator_hidden=args.generator_hidden,
            encoder_hidden=args.encoder_hidden, input_noise=args.input_noise, noise=args.noise,
            input_dropout=args.input_dropout, dropout=args.dropout, supervised_weight=args.supervised_weight,
            unlabelled_weight=args.unlabelled_weight, consistency_weight=args.consistency_weight,
            consistency_ramp_steps=args.consistency_ramp_epochs * steps, adversarial=args.adversarial,
            translate=args.translate, ema_decay=args.ema_decay, weight_norm=args.weight_norm, seed=args.seed)
        if args.weight_norm:  # on a fixed sample of the training images
            model.initialize(dataset.train.x[np.random.default_rng(args.seed).permutation(dataset.train.n)[:500]])
        return model

    def pictures(self, args, dataset, model):
        """reconstructions.png: 50 validation images beside G(E(x))."""
        from zoo import viz

        x = model.validate_data(dataset.validation.x[:50])
        pairs = viz.pairs(x, model.reconstruct(x))
        return {"reconstructions.png": lambda p: viz.save_png(p, viz.tile(pairs, dataset.image_shape, n_cols=10))}


FAMILY = ImplicitHybridFamily()
