"""Implicit-density deep hybrids (Kuleshov & Ermon, UAI 2017): a GAN trained by adversarially learned inference
(ALI, Dumoulin et al. 2017) whose joint discriminator D(x, z) is also the classifier, with a Pi-model consistency
term (Laine & Aila 2017), so that a generative and a discriminative semi-supervised technique act on one model.

Generator G: z ~ U(0, 1)^n_latent -> x; encoder E: x -> z in (0, 1). D(x, z) has an x branch, a z branch and one
dense layer to K class logits l(x, z); p(y | x) = softmax l(x, E(x)), and D's "real" score is
sigmoid(logsumexp l) (Salimans et al.'s K-class trick). Real pairs are (x, E(x)), fake pairs (G(z), z). D ascends

    - CE(labelled) - w(t) Pi(labelled) - u [GAN(unlabelled, fake) + w(t) Pi(unlabelled)]

(`fit` minimises its negative), GAN = 1/2 [-log D(real) - log(1 - D(fake))], Pi the mean squared difference of
the class probabilities of two stochastic passes (noise, dropout, translations), w(t) = w exp(-5 (1 - t/T)^2)
over the first T updates; G and E descend the feature matching || mean f(x, E(x)) - mean f(G(z), z) ||_1 / dim
on D's last hidden features f. An exponential moving average of E's and D's weights is what classifies.
"""
import keras
import numpy as np
import tensorflow as tf

from zoo import checks
from zoo.models.base import RestoresCompiledState, SemiSupervisedClassifier, in_batches, masked_mean, next_seed
from zoo.models.metrics import RunningMeans

ARCHITECTURES = ("mlp", "cnn")
TERMS = ("supervised_loss", "consistency_labelled", "gan_loss", "consistency_unlabelled", "feature_matching",
         "real_score", "fake_score", "accuracy")


@keras.saving.register_keras_serializable(package="zoo")
def leaky_relu(x):
    return keras.activations.leaky_relu(x, negative_slope=0.2)


@keras.saving.register_keras_serializable(package="zoo")
class WeightNormDense(keras.layers.Layer):
    """activation(x @ (v g / ||v||) + b), each column of v normalised (Salimans & Kingma 2016): the scale g of a
    unit is learnt apart from its direction. `initialize(x)` sets g and b so that the pre-activations of x have
    zero mean and unit variance per unit (their data-dependent initialisation)."""

    def __init__(self, units, activation=None, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.units = int(units)
        self.activation = keras.activations.get(activation)
        self.seed = seed

    def build(self, input_shape):
        self.v = self.add_weight(shape=(input_shape[-1], self.units), name="v",
                                 initializer=keras.initializers.RandomNormal(stddev=0.05, seed=self.seed))
        self.g = self.add_weight(shape=(self.units,), initializer="ones", name="g")
        self.b = self.add_weight(shape=(self.units,), initializer="zeros", name="b")

    def pre_activation(self, x):
        return tf.matmul(x, self.v) * (self.g / tf.norm(self.v, axis=0)) + self.b

    def call(self, x):
        return self.activation(self.pre_activation(x))

    def initialize(self, x):
        """g, b such that the pre-activations of the batch x are standardised per unit; returns the outputs."""
        t = tf.matmul(x, self.v) / tf.norm(self.v, axis=0)
        mean, var = tf.nn.moments(t, axes=[0])
        scale = 1.0 / tf.sqrt(var + 1e-6)
        self.g.assign(scale)
        self.b.assign(-mean * scale)
        return self(x)

    def get_config(self):
        return {**super().get_config(), "units": self.units,
                "activation": keras.activations.serialize(self.activation), "seed": self.seed}


def _dense_stack(sizes, activation, batch_norm=False, weight_norm=False, seed=None):
    """Dense layers of `sizes`, with batch normalisation before the activation, or weight-normalised, if asked."""
    layers = []
    for i, n in enumerate(sizes):
        init = keras.initializers.GlorotUniform(None if seed is None else seed + 10 * i)
        if weight_norm:
            layers.append(WeightNormDense(n, activation, seed=None if seed is None else seed + 10 * i))
        elif batch_norm:
            layers += [keras.layers.Dense(n, kernel_initializer=init, use_bias=False),
                       keras.layers.BatchNormalization(), keras.layers.Activation(activation)]
        else:
            layers.append(keras.layers.Dense(n, activation=activation, kernel_initializer=init))
    return layers


@keras.saving.register_keras_serializable(package="zoo")
class ImplicitHybrid(SemiSupervisedClassifier, RestoresCompiledState, keras.Model):
    """ALI with a joint discriminator-classifier and a consistency term, trained semi-supervised by `model.fit`
    on batches (x, y) whose unlabelled rows have y = -1 (`zoo.data.semi_supervised_batches`); x in [0, 1].

    Args:
      n_visible: pixels of x. n_classes: K. image_shape: (h, w) or (h, w, c); needed by the cnn architecture and
        by translations.
      architecture: "mlp" (G, E and D's x branch dense networks) or "cnn" (convolutional; h and w divisible by 4).
      n_latent: dimension of z. generator_hidden, encoder_hidden: the mlp G's and E's hidden layers;
        discriminator_hidden: the mlp x branch's (cnn: the widths of its three stages); latent_hidden: the z branch.
      input_noise, noise: std of the Gaussian noise on D's input and before each hidden layer of the x branch;
        input_dropout, dropout: dropout there instead (or too); latent_dropout: on z and on the z branch's output
        (the reference's 0.2, 0.5). Training passes only.
      supervised_weight, unlabelled_weight (u), consistency_weight (w): the objective's weights (>= 0);
        adversarial: False drops the GAN term and G, E's updates (the classifier alone, or with consistency).
      consistency_ramp_steps (T): w's ramp. translate: random translations of up to this many pixels, drawn
        afresh for each of the two consistency passes. ema_decay: of the classifying copy's weights.
      weight_norm: D's dense layers weight-normalised (`WeightNormDense`; start them with `initialize(x)`).
    """

    default_batch_size = 100  # fit's on arrays

    def __init__(self, n_visible, n_classes=10, image_shape=None, architecture="mlp", n_latent=100,
                 generator_hidden=(500, 500), encoder_hidden=(500, 500),
                 discriminator_hidden=(1000, 500, 250, 250, 250), latent_hidden=(500, 250), input_noise=0.3,
                 noise=0.5, input_dropout=0.0, dropout=0.0, latent_dropout=(0.2, 0.5), supervised_weight=1.0,
                 unlabelled_weight=1.0, consistency_weight=0.0, consistency_ramp_steps=0, adversarial=True,
                 translate=0, ema_decay=0.999, weight_norm=False, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.n_visible = checks.check_positive_int(n_visible, "n_visible")
        self.n_classes = checks.check_positive_int(n_classes, "n_classes", minimum=2)
        self.image_shape = None if image_shape is None else tuple(int(n) for n in image_shape)
        if self.image_shape is not None and int(np.prod(self.image_shape)) != self.n_visible:
            raise ValueError(f"image_shape {self.image_shape} does not have {self.n_visible} pixels")
        self.architecture = checks.check_choice(architecture, "architecture", ARCHITECTURES)
        if (self.architecture == "cnn" or translate) and self.image_shape is None:
            raise ValueError("the cnn architecture and translations need image_shape")
        if self.architecture == "cnn" and any(n % 4 for n in self.image_shape[:2]):
            raise ValueError(f"the cnn architecture needs image sides divisible by 4, got {self.image_shape}")
        self.n_latent = checks.check_positive_int(n_latent, "n_latent")
        sizes = {}
        for name, value in [("generator_hidden", generator_hidden), ("encoder_hidden", encoder_hidden),
                            ("discriminator_hidden", discriminator_hidden), ("latent_hidden", latent_hidden)]:
            value = [value] if isinstance(value, (int, np.integer)) else list(value)
            sizes[name] = [checks.check_positive_int(n, f"a size of {name}") for n in value]
        self.generator_hidden, self.encoder_hidden = sizes["generator_hidden"], sizes["encoder_hidden"]
        self.discriminator_hidden, self.latent_hidden = sizes["discriminator_hidden"], sizes["latent_hidden"]
        if self.architecture == "cnn" and len(self.discriminator_hidden) != 3:
            raise ValueError("a cnn discriminator takes three widths (discriminator_hidden), got "
                             f"{self.discriminator_hidden}")
        self.input_noise = checks.check_nonnegative(input_noise, "input_noise")
        self.noise = checks.check_nonnegative(noise, "noise")
        self.input_dropout = checks.check_probability(input_dropout, "input_dropout")
        self.dropout = checks.check_probability(dropout, "dropout")
        if len(latent_dropout) != 2:
            raise ValueError(f"latent_dropout takes two rates (on z, on the z branch's output), got {latent_dropout}")
        self.latent_dropout = [checks.check_probability(r, "a latent_dropout rate") for r in latent_dropout]
        self.supervised_weight = checks.check_nonnegative(supervised_weight, "supervised_weight")
        self.unlabelled_weight = checks.check_nonnegative(unlabelled_weight, "unlabelled_weight")
        self.consistency_weight = checks.check_nonnegative(consistency_weight, "consistency_weight")
        self.adversarial = bool(adversarial)
        unlabelled_terms = self.unlabelled_weight and (self.adversarial or self.consistency_weight)
        if not self.supervised_weight and not unlabelled_terms:
            raise ValueError("supervised_weight is 0 and no unlabelled term is on (unlabelled_weight with "
                             "adversarial or a consistency_weight): nothing to train")
        self.consistency_ramp_steps = checks.check_positive_int(consistency_ramp_steps, "consistency_ramp_steps",
                                                                minimum=0)
        self.translate = checks.check_positive_int(translate, "translate", minimum=0)
        if self.image_shape is not None and self.translate >= min(self.image_shape[:2]):
            raise ValueError(f"translate {self.translate} is not smaller than the image {self.image_shape}")
        self.ema_decay = checks.check_probability(ema_decay, "ema_decay")
        self.weight_norm = bool(weight_norm)
        self.seed = None if seed is None else checks.check_positive_int(seed, "seed", minimum=0)
        self.seed_generator = keras.random.SeedGenerator(self.seed)
        self.generator = self._generator()
        self.encoder_net, self.x_branch, self.z_branch, self.head = self._classifier_nets()
        # the classifying copy: E and D averaged over the updates (never trained by gradients)
        self.ema_encoder, self.ema_x_branch, self.ema_z_branch, self.ema_head = self._classifier_nets()
        self.monitor = RunningMeans(TERMS, name="monitor")
        self.build((None, self.n_visible))

    # -- networks ---------------------------------------------------------------------------------------
    def _s(self, offset):
        return None if self.seed is None else self.seed + offset

    def _image(self):
        return self.image_shape if len(self.image_shape) == 3 else (*self.image_shape, 1)

    def _generator(self):
        if self.architecture == "mlp":
            layers = _dense_stack(self.generator_hidden, "softplus", batch_norm=True, seed=self._s(0))
            layers.append(keras.layers.Dense(self.n_visible, activation="sigmoid",
                                             kernel_initializer=keras.initializers.GlorotUniform(self._s(99))))
        else:
            h, w, c = self._image()
            layers = [keras.layers.Dense(h // 4 * w // 4 * 128, use_bias=False), keras.layers.BatchNormalization(),
                      keras.layers.ReLU(), keras.layers.Reshape((h // 4, w // 4, 128)),
                      keras.layers.Conv2DTranspose(64, 5, 2, padding="same", use_bias=False),
                      keras.layers.BatchNormalization(), keras.layers.ReLU(),
                      keras.layers.Conv2DTranspose(c, 5, 2, padding="same", activation="sigmoid"),
                      keras.layers.Flatten()]
        return keras.Sequential([keras.Input((self.n_latent,)), *layers], name="generator")

    def _classifier_nets(self):
        """(E, D's x branch, D's z branch, D's head): the networks of p(y | x) = softmax head[x_branch(x),
        z_branch(E(x))]."""
        if self.architecture == "mlp":
            enc = _dense_stack(self.encoder_hidden, leaky_relu, batch_norm=True, seed=self._s(200))
            xb = self._x_branch_mlp()
        else:
            enc = [keras.layers.Reshape(self._image())]
            for width in (32, 64, 128):
                enc += [keras.layers.Conv2D(width, 3, 2, padding="same", use_bias=False),
                        keras.layers.BatchNormalization(), keras.layers.Activation(leaky_relu)]
            enc += [keras.layers.GlobalAveragePooling2D()]
            xb = self._x_branch_cnn()
        enc.append(keras.layers.Dense(self.n_latent, activation="sigmoid"))
        encoder = keras.Sequential([keras.Input((self.n_visible,)), *enc], name="encoder")
        x_branch = keras.Sequential([keras.Input((self.n_visible,)), *xb], name="x_branch")
        before, after = self.latent_dropout
        zb = ([keras.layers.Dropout(before, seed=self._s(500))] if before else []) + \
            _dense_stack(self.latent_hidden, leaky_relu, weight_norm=self.weight_norm, seed=self._s(510)) + \
            ([keras.layers.Dropout(after, seed=self._s(599))] if after else [])
        z_branch = keras.Sequential([keras.Input((self.n_latent,)), *zb], name="z_branch")
        width = x_branch.output_shape[-1] + z_branch.output_shape[-1]
        logits = WeightNormDense(self.n_classes, seed=self._s(600)) if self.weight_norm else \
            keras.layers.Dense(self.n_classes, kernel_initializer=keras.initializers.GlorotUniform(self._s(600)))
        head = keras.Sequential([keras.Input((width,)), logits], name="head")
        return encoder, x_branch, z_branch, head

    def _x_branch_mlp(self):
        layers = []
        for i, n in enumerate(self.discriminator_hidden):
            std, rate = (self.input_noise, self.input_dropout) if i == 0 else (self.noise, self.dropout)
            if std:
                layers.append(keras.layers.GaussianNoise(std, seed=self._s(300 + 10 * i)))
            if rate:
                layers.append(keras.layers.Dropout(rate, seed=self._s(301 + 10 * i)))
            layers += _dense_stack([n], "relu", weight_norm=self.weight_norm, seed=self._s(302 + 10 * i))
        if self.noise:
            layers.append(keras.layers.GaussianNoise(self.noise, seed=self._s(398)))
        return layers

    def _x_branch_cnn(self):
        """Salimans et al.'s CNN discriminator, narrowed: three stages of three 3x3 convolutions (the last with
        stride 2 in the first two stages), network-in-network layers, global average pooling."""
        a, b, c = self.discriminator_hidden
        layers = [keras.layers.Reshape(self._image())]
        if self.input_noise:
            layers.append(keras.layers.GaussianNoise(self.input_noise, seed=self._s(300)))
        if self.input_dropout:
            layers.append(keras.layers.Dropout(self.input_dropout, seed=self._s(301)))
        for stage, width in enumerate((a, b)):
            layers += [keras.layers.Conv2D(width, 3, padding="same", activation=leaky_relu),
                       keras.layers.Conv2D(width, 3, padding="same", activation=leaky_relu),
                       keras.layers.Conv2D(width, 3, 2, padding="same", activation=leaky_relu)]
            if self.dropout:
                layers.append(keras.layers.Dropout(self.dropout, seed=self._s(310 + stage)))
            if self.noise:
                layers.append(keras.layers.GaussianNoise(self.noise, seed=self._s(320 + stage)))
        layers += [keras.layers.Conv2D(c, 3, padding="valid", activation=leaky_relu),
                   keras.layers.Conv2D(c // 2, 1, activation=leaky_relu),
                   keras.layers.Conv2D(c // 4, 1, activation=leaky_relu),
                   keras.layers.GlobalAveragePooling2D()]
        return layers

    def build(self, input_shape):
        self.copy_to_average(1.0)
        self.built = True

    def initialize(self, x):
        """Weight normalisation's data-dependent start: each weight-normalised layer of D, in order, standardises
        its pre-activations on the images x (and their codes E(x)); the average starts there too."""
        x = tf.convert_to_tensor(self.validate_data(x), self.compute_dtype)

        def run(net, h):
            for layer in net.layers:
                h = layer.initialize(h) if isinstance(layer, WeightNormDense) else layer(h, training=False)
            return h

        features = tf.concat([run(self.x_branch, x), run(self.z_branch, self.encoder_net(x))], axis=-1)
        run(self.head, features)
        self.copy_to_average(1.0)

    def get_config(self):
        return {**super().get_config(), "n_visible": self.n_visible, "n_classes": self.n_classes,
                "image_shape": self.image_shape, "architecture": self.architecture, "n_latent": self.n_latent,
                "generator_hidden": self.generator_hidden, "encoder_hidden": self.encoder_hidden,
                "discriminator_hidden": self.discriminator_hidden, "latent_hidden": self.latent_hidden,
                "input_noise": self.input_noise, "noise": self.noise, "input_dropout": self.input_dropout,
                "dropout": self.dropout, "latent_dropout": self.latent_dropout,
                "supervised_weight": self.supervised_weight,
                "unlabelled_weight": self.unlabelled_weight, "consistency_weight": self.consistency_weight,
                "consistency_ramp_steps": self.consistency_ramp_steps, "adversarial": self.adversarial,
                "translate": self.translate, "ema_decay": self.ema_decay, "weight_norm": self.weight_norm,
                "seed": self.seed}

    def describe(self):
        x = "-".join(map(str, self.discriminator_hidden))
        terms = ["labels"] + (["ALI"] if self.adversarial and self.unlabelled_weight else []) + \
            ([f"consistency {self.consistency_weight:g}"] if self.consistency_weight else [])
        return (f"{type(self).__name__} ({self.architecture}): z {self.n_latent}, D x branch {x}, z branch "
                f"{'-'.join(map(str, self.latent_hidden))}, {self.n_classes} classes; {' + '.join(terms)}")

    # -- the averaged copy --------------------------------------------------------------------------------
    def _pairs(self):
        """(trained network, its averaged copy) pairs."""
        return [(self.encoder_net, self.ema_encoder), (self.x_branch, self.ema_x_branch),
                (self.z_branch, self.ema_z_branch), (self.head, self.ema_head)]

    def copy_to_average(self, rate):
        """average <- average + rate (weights - average) for trained weights; other state (batch-norm statistics)
        copied."""
        for net, ema in self._pairs():
            for v, e in zip(net.weights, ema.weights):
                e.assign(e + rate * (v - e) if v.trainable else v)

    def average_rate(self):
        """1 - ema_decay, larger at first (as tf.train.ExponentialMovingAverage with num_updates): the average
        forgets its random start within the first ~10 / (1 - decay) updates."""
        t = tf.cast(self.optimizer.iterations, tf.float32)
        return 1.0 - tf.minimum(self.ema_decay, (1.0 + t) / (10.0 + t))

    # -- p(y | x), G, E -------------------------------------------------------------------------------------
    def discriminate(self, x, z, training=False, average=False):
        """(logits l(x, z), D's last hidden features f(x, z))."""
        xb, zb, head = (self.ema_x_branch, self.ema_z_branch, self.ema_head) if average else \
            (self.x_branch, self.z_branch, self.head)
        features = tf.concat([xb(x, training=training), zb(z, training=training)], axis=-1)
        return head(features), features

    def call(self, x, training=False, average=True):
        """Class logits l(x, E(x)), by the averaged networks unless average=False."""
        x = tf.convert_to_tensor(x, self.compute_dtype)
        encoder = self.ema_encoder if average else self.encoder_net
        return self.discriminate(x, encoder(x, training=training), training=training, average=average)[0]

    def generate(self, z, training=False):
        return self.generator(z, training=training)

    def prior_sample(self, n, seed):
        return tf.random.stateless_uniform([n, self.n_latent], seed, dtype=self.compute_dtype)

    def translated(self, x, seed):
        """x with each image moved by its own random shift of up to `translate` pixels in each direction (zeros
        shifted in): x' = S_rows X S_cols^T with one-hot shift matrices."""
        if not self.translate:
            return x
        h, w = self.image_shape[:2]
        n = tf.shape(x)[0]
        shifts = tf.random.stateless_uniform([2, n], seed, -self.translate, self.translate + 1, dtype=tf.int32)

        def shift_matrices(size, by):  # (n, size, size), row i picks source row i - by
            return tf.one_hot(tf.range(size)[None, :] - by[:, None], size, dtype=x.dtype)

        images = tf.reshape(x, [n, h, w, -1])
        rows, cols = shift_matrices(h, shifts[0]), shift_matrices(w, shifts[1])
        moved = tf.einsum("nij,njkc,nlk->nilc", rows, images, cols)
        return tf.reshape(moved, tf.shape(x))

    def consistency_weight_now(self):
        """w(t) = consistency_weight exp(-5 (1 - t/T)^2) for t < T updates, then consistency_weight."""
        if not self.consistency_ramp_steps or getattr(self, "optimizer", None) is None:
            return tf.constant(self.consistency_weight, self.compute_dtype)
        t = tf.minimum(tf.cast(self.optimizer.iterations, self.compute_dtype) / self.consistency_ramp_steps, 1.0)
        return self.consistency_weight * tf.exp(-5.0 * tf.square(1.0 - t))

    def objective_weights(self):
        """{name: the objective's weight now}: the consistency weight on its ramp, the unlabelled weight."""
        return {"consistency_weight": self.consistency_weight_now(), "unlabelled_weight": self.unlabelled_weight}

    # -- the objective ------------------------------------------------------------------------------------
    def losses_of(self, x, y, seed, w=None):
        """(D's loss, G and E's loss, {term: value}) on a batch: y = -1 marks unlabelled rows; seed: (2,) int32
        for the translations and the prior; w: the consistency weight (default: the ramp's now)."""
        w = self.consistency_weight_now() if w is None else w
        seeds = tf.random.experimental.stateless_split(seed, 3)
        labelled = tf.cast(y >= 0, self.compute_dtype)
        unlabelled = 1.0 - labelled
        x1 = self.translated(x, seeds[0])
        logits, real_features = self.discriminate(x1, self.encoder_net(x1, training=True), training=True)
        supervised, accuracy = self.labelled_loss_and_accuracy(logits, y)
        terms = {"supervised_loss": supervised}
        zero = tf.zeros([], self.compute_dtype)
        consistency = zero
        if self.consistency_weight:
            x2 = self.translated(x, seeds[1])
            logits2, _ = self.discriminate(x2, self.encoder_net(x2, training=True), training=True)
            consistency = tf.reduce_mean(tf.square(tf.nn.softmax(logits) - tf.nn.softmax(logits2)), -1)
        terms["consistency_labelled"] = masked_mean(labelled, consistency)
        terms["consistency_unlabelled"] = masked_mean(unlabelled, consistency)
        # the GAN's real pairs: the unlabelled rows, or every row of a batch without any (all labels)
        real = tf.cond(tf.reduce_sum(unlabelled) > 0, lambda: unlabelled, lambda: tf.ones_like(unlabelled))
        n_real = tf.reduce_sum(real)
        real_score = tf.reduce_logsumexp(logits, -1)
        terms["real_score"] = masked_mean(real, tf.sigmoid(real_score))
        gan = fake_score = feature_matching = zero
        if self.adversarial and self.unlabelled_weight:
            z = self.prior_sample(tf.cast(n_real, tf.int32), seeds[2])  # one fake per real pair
            fake_logits, fake_features = self.discriminate(self.generate(z, training=True), z, training=True)
            fake = tf.reduce_logsumexp(fake_logits, -1)
            # 1/2 [-log sigmoid(real) - log(1 - sigmoid(fake))], softplus(-s) = -log sigmoid(s)
            gan = 0.5 * (masked_mean(real, tf.nn.softplus(-real_score)) + tf.reduce_mean(tf.nn.softplus(fake)))
            fake_score = tf.reduce_mean(tf.sigmoid(fake))
            real_mean = tf.reduce_sum(real[:, None] * real_features, 0) / n_real
            feature_matching = tf.reduce_mean(tf.abs(real_mean - tf.reduce_mean(fake_features, 0)))
        terms.update(gan_loss=gan, fake_score=fake_score, feature_matching=feature_matching, accuracy=accuracy)
        d_loss = (self.supervised_weight * terms["supervised_loss"] + w * terms["consistency_labelled"] +
                  self.unlabelled_weight * (gan + w * terms["consistency_unlabelled"]))
        return d_loss, feature_matching, terms

    # -- training -------------------------------------------------------------------------------------------
    def compile(self, optimizer=None, generator_optimizer=None, **kwargs):
        """D's optimizer (default Adam 3e-4, beta_1 0.5, the reference's) and G and E's (default: a copy of D's
        configuration, its own state)."""
        optimizer = optimizer if optimizer is not None else keras.optimizers.Adam(3e-4, beta_1=0.5)
        super().compile(optimizer=optimizer, **kwargs)
        if generator_optimizer is None:
            generator_optimizer = type(self.optimizer).from_config(self.optimizer.get_config())
        self.generator_optimizer = generator_optimizer
        self._compile_config.config["generator_optimizer"] = generator_optimizer  # saved with the model
        self.optimizer.build(self.discriminator_variables())
        self.generator_optimizer.build(self.generator_variables())

    def compile_from_config(self, config):
        self.compile(**keras.saving.deserialize_keras_object(config))

    def discriminator_variables(self):
        return self.x_branch.trainable_variables + self.z_branch.trainable_variables + self.head.trainable_variables

    def generator_variables(self):
        return self.generator.trainable_variables + self.encoder_net.trainable_variables

    @property
    def metrics(self):
        return [self.monitor]

    def _update_monitor(self, n, terms):
        self.monitor.update_state([tf.fill([n], tf.cast(terms[name], self.compute_dtype)) for name in TERMS])

    def train_step(self, data):
        x, y = self._unpack(data)
        seed = next_seed(self.seed_generator)
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        with tf.GradientTape(persistent=True) as tape:  # one forward pass, each player's gradient of its loss
            d_loss, g_loss, terms = self.losses_of(x, y, seed)
            d_loss, g_loss = d_loss / replicas, g_loss / replicas  # on the tape: graph-mode tapes need it
        d_vars = self.discriminator_variables()
        d_grads = tape.gradient(d_loss, d_vars, unconnected_gradients="zero")
        if self.adversarial and self.unlabelled_weight:
            g_vars = self.generator_variables()
            g_grads = tape.gradient(g_loss, g_vars, unconnected_gradients="zero")
            self.generator_optimizer.apply_gradients(zip(g_grads, g_vars))
        del tape
        rate = self.average_rate()
        self.optimizer.apply_gradients(zip(d_grads, d_vars))
        self.copy_to_average(rate)
        self._update_monitor(tf.shape(x)[0], terms)
        return self.monitor.result()

    def test_step(self, data):
        """Validation: the averaged classifier's cross-entropy and accuracy on labelled (x, y)."""
        x, y = self._unpack(data)
        supervised, accuracy = self.labelled_loss_and_accuracy(self(x), y)
        terms = {name: tf.zeros([], self.compute_dtype) for name in TERMS}
        terms.update(supervised_loss=supervised, accuracy=accuracy)
        self._update_monitor(tf.shape(x)[0], terms)
        means = self.monitor.result()
        return {"supervised_loss": means["supervised_loss"], "accuracy": means["accuracy"]}

    # -- public NumPy-facing API ------------------------------------------------------------------------------
    def validate_data(self, x, name="x"):
        """`x` as a finite float32 matrix of n_visible columns in [0, 1]; ValueError otherwise."""
        x = checks.as_float_matrix(x, name, width=self.n_visible)
        if x.min() < 0 or x.max() > 1:
            raise ValueError(f"{name} must hold pixel values in [0, 1], got values in [{x.min():g}, {x.max():g}]")
        return x

    def sample(self, n, seed=None):
        """n images G(z), z ~ U(0, 1)^n_latent (NumPy)."""
        n = checks.check_positive_int(n, "n")
        seed = tf.constant([0 if seed is None else int(seed), 1], tf.int32)
        return self.generate(self.prior_sample(n, seed)).numpy()

    def encode(self, x, batch_size=2000):
        """E(x) by the averaged encoder (NumPy)."""
        return in_batches(lambda rows: self.ema_encoder(rows), self.validate_data(x), batch_size)

    def reconstruct(self, x, batch_size=2000):
        """G(E(x)): what the generator makes of each image's code (NumPy)."""
        return in_batches(lambda rows: self.generate(self.ema_encoder(rows)), self.validate_data(x), batch_size)

    def encoder(self):
        """The Encoder capability (`zoo finetune`): a copy of x -> f(x, E(x)), the averaged classifier's last
        hidden features, as a Functional model."""
        inputs = keras.Input((self.n_visible,), dtype="float32")
        nets = [keras.models.clone_model(net) for net in (self.ema_encoder, self.ema_x_branch, self.ema_z_branch)]
        for copy, net in zip(nets, (self.ema_encoder, self.ema_x_branch, self.ema_z_branch)):
            copy.set_weights(net.get_weights())
        features = keras.layers.Concatenate()([nets[1](inputs), nets[2](nets[0](inputs))])
        return keras.Model(inputs, features, name="implicit_hybrid_features")

    def summary_images(self, x):
        """Samples of G and 50 images beside their reconstructions G(E(x))."""
        from zoo import viz

        x = self.validate_data(x)[:50]
        return {"samples": (self.sample(100, seed=0), False), "reconstructions": (viz.pairs(x, self.reconstruct(x)),
                                                                                   False, 10)}

    def summary_histograms(self, x):
        x = self.validate_data(x)[:500]
        return {"codes": self.encode(x), "logits": self(x).numpy()}

    def serving_endpoints(self):
        """classify(x) -> probabilities and class; encode(x) -> z = E(x); sample(z) -> G(z) (z in [0, 1])."""
        x = [tf.TensorSpec([None, self.n_visible], tf.float32, name="x")]
        z = [tf.TensorSpec([None, self.n_latent], tf.float32, name="z")]

        def classify(x):
            probabilities = tf.nn.softmax(self(x))
            return {"probabilities": probabilities, "class": tf.argmax(probabilities, axis=-1)}

        return {"classify": (classify, x), "encode": (lambda x: {"z": self.ema_encoder(x)}, x),
                "sample": (lambda z: {"x": self.generate(z)}, z)}
