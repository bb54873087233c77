"""A model family's part of `zoo train FAMILY`: the `Family` interface the run manager (`zoo.cli.train`) calls,
and the helpers the families share (their optimizer, the data they fit, the log Z monitor)."""
from dataclasses import dataclass

from zoo.cli.args import nonnegative_float, nonnegative_int, positive_int


@dataclass
class TrainingData:
    """What `fit` sees: `x` (arrays or a tf.data pipeline), the `batch_size` to pass to fit (None for a
    pipeline), and fixed samples of the training and validation splits for monitors and pictures."""
    x: object
    batch_size: object
    monitor_train_x: object
    validation_x: object
    binarization: str
    validation_y: object = None  # labels of validation_x, for a model that also classifies (a hybrid)


class Family:
    """A model family's part of `zoo train`. Subclasses set `name`, `help`, `description`, `epilog`, and
    implement `add_arguments` and `build`; the other methods have defaults.

    `lr`: the family's default learning rate. A family with one takes the shared --lr and --lr-final (a
    linear decay), and with a default `momentum` too the shared --momentum: it trains with SGD, else with
    Adam (`compile`)."""
    name = help = description = epilog = None
    lr = momentum = None
    dataset, batch_size = "binarized_mnist", 100  # the defaults of --dataset and --batch-size

    def add_arguments(self, parser):
        """The family's own argument groups on `parser` (the common ones are added by the run manager)."""
        raise NotImplementedError

    def build(self, args, dataset):
        """A new, uncompiled model for `dataset` from the parsed arguments."""
        raise NotImplementedError

    def training_data(self, args, dataset, model):
        """`TrainingData`: by default the checked training arrays (`model.validate_data`), or fresh binary
        samples every epoch with --dynamic-binarization (the monitors then see one fixed sample)."""
        return default_training_data(args, dataset, model)

    def steps_per_epoch(self, args, dataset):
        """Updates per epoch (the learning rate's schedule spans epochs x these): a batch of --batch-size
        training examples each."""
        return -(-dataset.train.n // args.batch_size)

    def compile(self, args, model, steps):
        """Compile `model` for `steps` updates in all: the family's optimizer at --lr, decaying linearly to
        --lr-final over them (the model's own default without a learning rate)."""
        if self.lr is None:
            model.compile()
        else:
            momentum = None if self.momentum is None else args.momentum
            model.compile(optimizer(args.lr, args.lr_final, steps, momentum=momentum))

    def callbacks(self, args, dataset, model, data):
        """The family's callbacks, run before the TensorBoard logger (so that the scalars they add to `logs`
        are logged)."""
        return []

    def pictures(self, args, dataset, model):
        """{file name: write(path)} of the family's pictures besides samples.png."""
        return {}

    def samples(self, args, model, n, seed):
        """The `n` samples of samples.png, for a model that can sample."""
        return model.sample(n, seed=seed)


def learning_rate(lr, lr_final, steps):
    """`lr`, or with `lr_final` a linear decay from lr to lr_final over `steps` updates (a Keras schedule)."""
    import keras

    if lr_final is None:
        return lr
    return keras.optimizers.schedules.PolynomialDecay(lr, steps, end_learning_rate=lr_final, power=1.0)


def optimizer(lr, lr_final, steps, momentum=None):
    """SGD with `momentum`, or Adam without one, at `learning_rate(lr, lr_final, steps)`."""
    import keras

    rate = learning_rate(lr, lr_final, steps)
    if momentum is None:
        return keras.optimizers.Adam(learning_rate=rate)
    return keras.optimizers.SGD(learning_rate=rate, momentum=momentum)


def add_log_z_every(group, what):
    """The --log-z-every option of the energy models' families (`log_z_monitor`); `what`: what it logs."""
    group.add_argument("--log-z-every", type=nonnegative_int, default=0, metavar="N",
                       help=f"every N epochs, log Z by a cheap AIS (1000 temperatures, 32 chains) and {what}, into "
                            "TensorBoard and the card (default: 0, off)")


def add_centering(group, units):
    """The --centering and --centering-rate options of the energy models' families; `units`: the layers that
    are centered."""
    group.add_argument("--centering", action="store_true",
                       help=f"centered gradient (Melchior et al. 2016): the update of the model rewritten with {units} "
                            "minus their moving means on the data (Bernoulli or softmax units)")
    group.add_argument("--centering-rate", type=nonnegative_float, default=0.01,
                       help="centering: rate of the moving means, in (0, 1] (default: %(default)s)")


def add_tempering(group, plain):
    """The --temperatures and --min-beta options of parallel tempering; `plain`: what one temperature runs."""
    group.add_argument("--temperatures", type=positive_int, default=1, metavar="T",
                       help="parallel tempering: --n-chains chains at each of T inverse temperatures from --min-beta "
                            f"to 1, swapping states after every sweep (default: 1, {plain})")
    group.add_argument("--min-beta", type=nonnegative_float, default=0.0,
                       help="parallel tempering: the hottest chains' inverse temperature, in [0, 1) "
                            "(default: %(default)s)")


def log_z_monitor(args, data):
    """[the log Z monitor on the validation split (never the test split)] with --log-z-every, else []."""
    from zoo import training

    if not args.log_z_every:
        return []
    return [training.LogPartitionMonitor(data.validation_x, train_x=data.monitor_train_x, every=args.log_z_every,
                                         seed=args.seed or 0, split="validation")]


def default_training_data(args, dataset, model):
    from zoo import capabilities, data

    train_x = dataset.train.x
    if args.dynamic_binarization:
        if capabilities.offers(model, capabilities.DataInitialized):
            model.prepare_visible_bias(train_x)
        x = dataset.train.pipeline(args.batch_size, seed=args.seed, dynamic_binarization=True)
        # training sees fresh samples; the metrics one fixed sample (for mnist: binarized_mnist's two splits), so
        # that validation numbers measure what the test split of binarized_mnist will
        monitor_train_x, validation_x = data.bernoulli_samples([dataset.train.x, dataset.validation.x])
        return TrainingData(x, None, monitor_train_x, validation_x,
                            "dynamic (fresh Bernoulli sample every epoch)")
    x = model.validate_data(train_x, f"dataset {args.dataset!r} (training split)")
    validation_x = model.validate_data(dataset.validation.x, f"dataset {args.dataset!r} (validation)")
    if args.batch_size > len(x):
        raise ValueError(f"--batch-size {args.batch_size} is larger than the training data ({len(x)})")
    return TrainingData(x, args.batch_size, x, validation_x, dataset.binarization)
