"""Deep hybrid models (Kuleshov & Ermon, UAI 2017): a generative model of x and a classifier p(y | x) that share
the generative model's latent features, trained on

    sup_weight * mean over labelled examples of log p(y | x) + unsup_weight * mean over all examples of bound(x)

(maximised; `fit` minimises its negative). Unlabelled examples (label -1) reach only the generative term, which
is where the hybrid pays off with few labels. The generative part is any zoo model that offers a trainable bound
(`training_loss(x, seed)`: a loss whose gradient is its own update, and the log importance weights) and features
(`call(x)`, differentiable: a Helmholtz machine's or BiHM's q mean path, the ADGM's E q(z | E a, x)); the
classifier (an MLP, or a small CNN on images) sees x and those features, so that its gradient moves the
inference network too. A generative part with a latent class variable (the ADGM with `n_classes`: Maaløe et al.'s
semi-supervised model) takes the labels and the classifier's logits: labelled rows are bounded at their class,
unlabelled ones with y drawn from the classifier, so that the unlabelled examples train the classifier directly.
"""
import keras
import numpy as np
import tensorflow as tf

from zoo import capabilities, checks
from zoo.models.base import RestoresCompiledState, SemiSupervisedClassifier, bound_and_ess, next_seed
from zoo.models.metrics import RunningMeans

CLASSIFIERS = ("mlp", "cnn", "features")


@keras.saving.register_keras_serializable(package="zoo")
class HybridModel(SemiSupervisedClassifier, RestoresCompiledState, keras.Model):
    """A generative model and a classifier trained jointly, supervised or semi-supervised, through `model.fit`
    on batches (x, y) whose unlabelled rows have y = -1 (`zoo.data.semi_supervised_batches`).

    Args:
      generative: the generative part (a built zoo.HelmholtzMachine, zoo.BiHM or zoo.AuxiliaryDeepGenerativeModel,
        or any model with `training_loss`, `call` and `log_importance_weights`).
      n_classes: classes of y.
      classifier: "mlp" (`hidden` sizes, ReLU) or "cnn" (two 5x5 convolutions of 32 and 64 channels with 2x2
        max-pooling on the image of `image_shape`, then `hidden`), whose first dense layer sees the generative
        features beside x; or "features": the MLP on the features alone (Kingma et al.'s M1 classifier).
      sup_weight, unsup_weight: the objective's two weights (>= 0, not both 0).
      ramp_steps: unsup_weight rises linearly from 0 over this many updates (0: at once).
      dropout: on the classifier's hidden layers during training. seed: the classifier's weights and dropout.
    """

    def __init__(self, generative, n_classes=10, classifier="mlp", hidden=(500,), image_shape=None, sup_weight=1.0,
                 unsup_weight=1.0, ramp_steps=0, dropout=0.0, seed=None, **kwargs):
        super().__init__(**kwargs)
        if isinstance(generative, dict):
            generative = keras.saving.deserialize_keras_object(generative)
        if not isinstance(generative, keras.Model):
            raise ValueError(f"the generative part must be a keras.Model, got {type(generative).__name__}")
        capabilities.require(generative, capabilities.TrainableBound, "be a deep hybrid's generative part")
        if not generative.built:
            raise ValueError("the generative part has no weights yet: give it n_visible or fit it first")
        self.generative = generative
        self.n_visible = int(generative.n_visible)
        self.n_classes = checks.check_positive_int(n_classes, "n_classes", minimum=2)
        # a generative part with a class variable bounds labelled rows at their y, unlabelled ones under p(y | x)
        self.class_latent = getattr(generative, "n_classes", None) is not None
        if self.class_latent and generative.n_classes != self.n_classes:
            raise ValueError(f"the generative part's class variable has {generative.n_classes} classes, the "
                             f"classifier {self.n_classes}")
        self.classifier_kind = checks.check_choice(classifier, "classifier", CLASSIFIERS)
        hidden = [hidden] if isinstance(hidden, (int, np.integer)) else list(hidden)
        self.hidden = [checks.check_positive_int(n, "a hidden layer size") for n in hidden]
        self.image_shape = None if image_shape is None else tuple(int(n) for n in image_shape)
        if self.classifier_kind == "cnn":
            if self.image_shape is None or int(np.prod(self.image_shape)) != self.n_visible:
                raise ValueError(f"a cnn classifier needs image_shape with {self.n_visible} pixels, got "
                                 f"{self.image_shape}")
        self.sup_weight = checks.check_nonnegative(sup_weight, "sup_weight")
        self.unsup_weight = checks.check_nonnegative(unsup_weight, "unsup_weight")
        if not self.sup_weight and not self.unsup_weight:
            raise ValueError("sup_weight and unsup_weight are both 0: nothing to train")
        self.ramp_steps = checks.check_positive_int(ramp_steps, "ramp_steps", minimum=0)
        self.dropout = checks.check_probability(dropout, "dropout")
        self.seed = None if seed is None else checks.check_positive_int(seed, "seed", minimum=0)
        self.seed_generator = keras.random.SeedGenerator(self.seed)

        def init(i):
            return keras.initializers.GlorotUniform(None if self.seed is None else self.seed + i)

        self.convolutions = [] if self.classifier_kind != "cnn" else [
            keras.layers.Conv2D(32, 5, padding="same", activation="relu", kernel_initializer=init(0), name="conv_1"),
            keras.layers.MaxPooling2D(2, name="pool_1"),
            keras.layers.Conv2D(64, 5, padding="same", activation="relu", kernel_initializer=init(1), name="conv_2"),
            keras.layers.MaxPooling2D(2, name="pool_2"), keras.layers.Flatten(name="flatten")]
        self.dense = [keras.layers.Dense(n, activation="relu", kernel_initializer=init(10 + i), name=f"hidden_{i + 1}")
                      for i, n in enumerate(self.hidden)]
        self.dropouts = [keras.layers.Dropout(self.dropout, seed=None if self.seed is None else self.seed + 100 + i)
                         for i in range(len(self.hidden))]
        self.logits = keras.layers.Dense(self.n_classes, kernel_initializer="zeros", name="logits")
        self.monitor = RunningMeans(["supervised_loss", "bound", "accuracy", "labelled_fraction"], name="monitor")
        self.build((None, self.n_visible))

    def build(self, input_shape):
        self.n_features = int(self.generative(tf.zeros((1, self.n_visible))).shape[-1])
        self.call(tf.zeros((1, self.n_visible)))  # creates the classifier's weights
        self.built = True

    def get_config(self):
        return {**super().get_config(), "generative": keras.saving.serialize_keras_object(self.generative),
                "n_classes": self.n_classes, "classifier": self.classifier_kind, "hidden": self.hidden,
                "image_shape": self.image_shape, "sup_weight": self.sup_weight, "unsup_weight": self.unsup_weight,
                "ramp_steps": self.ramp_steps, "dropout": self.dropout, "seed": self.seed}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def describe(self):
        gen = self.generative.describe() if capabilities.offers(self.generative, capabilities.Describable) else \
            type(self.generative).__name__
        on = "" if self.classifier_kind == "features" else "x and "
        return (f"{type(self).__name__}: {self.classifier_kind} classifier {'-'.join(map(str, self.hidden))} on {on}"
                f"{self.n_features} features of {gen}")

    def _next_seed(self):
        return next_seed(self.seed_generator)

    # -- p(y | x) ---------------------------------------------------------------------------------------
    def call(self, x, training=False):
        """The class logits of x: the classifier on x (convolved, for a cnn) and the generative features, or on the
        features alone."""
        x = tf.convert_to_tensor(x, self.compute_dtype)
        h = self.generative(x)
        if self.classifier_kind != "features":
            seen = x
            if self.convolutions:
                seen = tf.reshape(x, [-1, *self.image_shape, 1] if len(self.image_shape) == 2 else
                                  [-1, *self.image_shape])
                for layer in self.convolutions:
                    seen = layer(seen)
            h = tf.concat([seen, h], axis=-1)
        for dense, dropout in zip(self.dense, self.dropouts):
            h = dropout(dense(h), training=training)
        return self.logits(h)

    def unsup_weight_now(self):
        """unsup_weight, ramped from 0 over the first ramp_steps updates."""
        if not self.ramp_steps or getattr(self, "optimizer", None) is None:
            return tf.constant(self.unsup_weight, self.compute_dtype)
        progress = tf.cast(self.optimizer.iterations, self.compute_dtype) / self.ramp_steps
        return self.unsup_weight * tf.minimum(progress, 1.0)

    def objective_weights(self):
        """{name: the objective's weight now}: sup_weight, and unsup_weight on its ramp."""
        return {"sup_weight": self.sup_weight, "unsup_weight": self.unsup_weight_now()}

    def objective_terms(self, x, y, seed, training=True):
        """(supervised loss: the mean of -log p(y | x) over the labelled rows, 0 without any; the generative
        part's training loss on every row; its log weights (k, batch); the logits)."""
        logits = self(x, training=training)
        supervised, _ = self.labelled_loss_and_accuracy(logits, tf.cast(y, tf.int32))
        if self.class_latent:
            generative_loss, log_w = self.generative.training_loss(x, seed, labels=y, class_logits=logits)
        else:
            generative_loss, log_w = self.generative.training_loss(x, seed)
        return supervised, generative_loss, log_w, logits

    # -- training ---------------------------------------------------------------------------------------
    def compile(self, optimizer=None, **kwargs):
        """Adam (learning rate 1e-3) unless an optimizer is given."""
        super().compile(optimizer=optimizer if optimizer is not None else keras.optimizers.Adam(1e-3), **kwargs)

    @property
    def metrics(self):
        return [self.monitor]

    def _monitor(self, x, y, supervised, log_w, logits):
        labelled = tf.cast(y >= 0, self.compute_dtype)
        bound, _ = bound_and_ess(log_w)
        n = tf.shape(x)[0]
        # accuracy over the labelled rows: each batch's fraction, weighted as one value per row
        _, accuracy = self.labelled_loss_and_accuracy(logits, tf.cast(y, tf.int32))
        self.monitor.update_state([tf.fill([n], supervised), bound, tf.fill([n], accuracy), labelled])

    def train_step(self, data):
        x, y = self._unpack(data)
        with tf.GradientTape() as tape:
            supervised, generative_loss, log_w, logits = self.objective_terms(x, y, self._next_seed())
            loss = self.sup_weight * supervised + self.unsup_weight_now() * generative_loss
            loss = loss / tf.distribute.get_strategy().num_replicas_in_sync
        variables = self.trainable_variables
        self.optimizer.apply_gradients(zip(tape.gradient(loss, variables, unconnected_gradients="zero"), variables))
        self._monitor(x, y, supervised, log_w, logits)
        return self.monitor.result()

    def test_step(self, data):
        x, y = self._unpack(data)
        supervised, _, log_w, logits = self.objective_terms(x, y, self._next_seed(), training=False)
        self._monitor(x, y, supervised, log_w, logits)
        return self.monitor.result()

    # -- public NumPy-facing API -------------------------------------------------------------------------
    def validate_data(self, x, name="x"):
        """`x` checked by the generative part (shape, finiteness, binary)."""
        return self.generative.validate_data(x, name)

    def log_importance_weights(self, x, k, seed):
        """The generative part's (the LatentVariableModel capability: zoo eval's bound)."""
        return self.generative.log_importance_weights(x, k, seed)

    def sample(self, n, seed=None):
        """Samples of the generative part."""
        return self.generative.sample(n, seed=seed)

    def summary_images(self, x):
        """The generative part's pictures (TensorBoard)."""
        gen = self.generative
        return gen.summary_images(x) if capabilities.offers(gen, capabilities.TrainingSummaries) else {}

    def summary_histograms(self, x):
        """The generative part's histograms and the classifier's logits on a data sample."""
        gen = self.generative
        hists = dict(gen.summary_histograms(x)) if capabilities.offers(gen, capabilities.TrainingSummaries) else {}
        return {**hists, "logits": self(self.validate_data(x)[:500]).numpy()}

    def serving_endpoints(self):
        """The generative part's (its sample and k-sample bound, e.g. log_prob(x, k, seed)), classify(x) ->
        probabilities and class, encode(x) -> the generative features."""
        gen = self.generative
        endpoints = dict(gen.serving_endpoints()) if capabilities.offers(gen, capabilities.Servable) else {}
        x = [tf.TensorSpec([None, self.n_visible], tf.float32, name="x")]

        def classify(x):
            probabilities = tf.nn.softmax(self(x))
            return {"probabilities": probabilities, "class": tf.argmax(probabilities, axis=-1)}

        return {**endpoints, "classify": (classify, x), "encode": (lambda x: {"features": gen(x)}, x)}
