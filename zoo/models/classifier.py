"""A classifier on any encoder: the encoder's features, optional dropout, a new softmax layer (`zoo.finetune`).

An encoder is a Functional or Sequential `keras.Model` from inputs of shape (None, n_inputs), float32, to
features of shape (None, n_features): what a model that can encode returns from its `encoder()` method (the
RBM: x -> E[h | x], one sigmoid Dense layer).
"""
import keras
import numpy as np
import tensorflow as tf

from zoo import checks
from zoo.models.base import in_batches


def check_encoder(encoder):
    """(n_inputs, n_features) of `encoder`, a keras.Model from (None, n_inputs) to (None, n_features), or
    ValueError saying what it is instead."""
    if not isinstance(encoder, keras.Model):
        raise ValueError(f"an encoder must be a keras.Model, got {type(encoder).__name__}")
    try:
        inputs, outputs = encoder.inputs, encoder.outputs
    except (AttributeError, ValueError):
        inputs = outputs = None
    if not inputs or not outputs:
        raise ValueError(f"the encoder {encoder.name!r} has no defined inputs and outputs: give a Functional or "
                         "Sequential keras.Model that starts with keras.Input((n_inputs,))")
    if len(inputs) != 1 or len(outputs) != 1:
        raise ValueError(f"the encoder {encoder.name!r} must have one input and one output, got {len(inputs)} "
                         f"and {len(outputs)}")
    shapes = tuple(inputs[0].shape), tuple(outputs[0].shape)
    if any(len(s) != 2 or s[1] is None for s in shapes):
        raise ValueError(f"the encoder {encoder.name!r} must map (None, n_inputs) to (None, n_features), got "
                         f"{shapes[0]} -> {shapes[1]}")
    return int(shapes[0][1]), int(shapes[1][1])


def dense_layers(model):
    """The Dense layers inside `model`, in the order Keras flattens them (a Sequential's: first to last)."""
    return [layer for layer in model._flatten_layers(include_self=False, recursive=True)
            if isinstance(layer, keras.layers.Dense)]


def sigmoid_mlp(n_inputs, sizes, name="encoder"):
    """A Sequential of sigmoid Dense layers of `sizes` on `n_inputs` inputs (zero weights: set them after)."""
    return keras.Sequential([keras.Input((n_inputs,), dtype="float32")] + [
        keras.layers.Dense(n, activation="sigmoid", kernel_initializer="zeros", name=f"hidden_{i + 1}")
        for i, n in enumerate(sizes)], name=name)


@keras.saving.register_keras_serializable(package="zoo")
class Classifier(keras.Model):
    """p(y | x) = softmax(dropout(encoder(x)) W + b): an encoder under a new softmax layer of `n_classes` units.

    encoder: a keras.Model (`check_encoder`); the classifier trains it in place (give a copy, as every
      `encoder()` method does). Serialised into the classifier's config, so `model.keras` round-trips.
    dropout: during training, each feature is zeroed with this probability (the others scaled by
      1 / (1 - dropout)), by a Dropout layer seeded seed + 1000; at prediction the whole net is used.
    l2: adds l2 * sum ||kernel||^2 over every Dense layer (the encoder's and the softmax layer) to the
      training loss (not to the validation loss).
    encoder_lr_multiplier: the encoder's variables learn at this factor times the learning rate, the softmax
      layer at the full rate (set by `zoo.finetune.fine_tune`); see `train_step`.
    pretrained: whether the encoder's weights came from a trained model (`source` names its class) or from
      random initialisation (the baseline); `fine_tune` gives only a pretrained encoder the smaller rate.
    The softmax layer starts at zero (uniform class probabilities), in pretrained and random classifiers alike.

    Serving: `serving_endpoints()` gives `zoo.export` `classify` (input `x`; outputs `probabilities`, `class`)
    and `encode` (input `x`; output `features`, the encoder's). `encoder()` makes it an encoder itself.

    Attribute names keep the weight paths of classifiers saved before the encoder interface: `dense` lists
    every Dense layer (the encoder's first, the softmax layer last) and Keras saves them there first; configs
    of that time (`hidden_sizes`, `n_pretrained`, `lr_multipliers`) load as a Sequential of sigmoid layers.
    """

    def __init__(self, encoder, n_classes, dropout=0.0, l2=0.0, encoder_lr_multiplier=1.0, pretrained=True,
                 source=None, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.n_inputs, self.n_features = check_encoder(encoder)
        self.n_classes = checks.check_positive_int(n_classes, "n_classes", minimum=2)
        self.dropout = checks.check_probability(dropout, "dropout")
        self.l2 = checks.check_nonnegative(l2, "l2")
        self.encoder_lr_multiplier = checks.check_nonnegative(encoder_lr_multiplier, "encoder_lr_multiplier")
        self.pretrained = bool(pretrained)
        self.source = source
        self.seed = None if seed is None else checks.check_positive_int(seed, "seed", minimum=0)
        self.features = encoder
        # The new output layer starts at zero (uniform class probabilities): its first steps are a logistic
        # regression on the features below, not a fight against random weights. That beat Glorot by 1-3 points
        # with 1 and 10 labels per class (measured on MNIST's validation split, not the test split).
        self.head = keras.layers.Dense(self.n_classes, activation="softmax", kernel_initializer="zeros",
                                       name="softmax")
        self.dense = dense_layers(encoder) + [self.head]
        self.dropouts = [keras.layers.Dropout(self.dropout, seed=None if self.seed is None else self.seed + 1000,
                                              name="dropout_1")]
        self.build((None, self.n_inputs))

    def build(self, input_shape):
        self.head.build((None, self.n_features))
        self.built = True

    def call(self, x, training=False):
        h = self.features(x, training=training)
        if self.dropout:
            h = self.dropouts[0](h, training=training)
        return self.head(h)

    def encoder(self):
        """The encoder capability: a copy of this classifier's (fine-tuned) encoder."""
        copy = keras.models.clone_model(self.features)
        copy.set_weights(self.features.get_weights())
        return copy

    def get_config(self):
        return {**super().get_config(), "encoder": keras.saving.serialize_keras_object(self.features),
                "n_classes": self.n_classes, "dropout": self.dropout, "l2": self.l2,
                "encoder_lr_multiplier": self.encoder_lr_multiplier, "pretrained": self.pretrained,
                "source": self.source, "seed": self.seed}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if "hidden_sizes" in config:  # saved before the encoder interface: a sigmoid MLP described by its sizes
            sizes = [int(n) for n in config.pop("hidden_sizes")]
            if not sizes:
                raise ValueError("a classifier config with no hidden layers has no encoder")
            n_pretrained = config.pop("n_pretrained", 0)
            multipliers = config.pop("lr_multipliers", None)
            config["encoder"] = sigmoid_mlp(config.pop("n_inputs"), sizes)
            config["pretrained"] = n_pretrained > 0
            config["encoder_lr_multiplier"] = multipliers[0] if n_pretrained and multipliers else 1.0
        else:
            config["encoder"] = keras.saving.deserialize_keras_object(config["encoder"])
        return cls(**config)

    def set_encoder_lr_multiplier(self, multiplier):
        self.encoder_lr_multiplier = checks.check_nonnegative(multiplier, "encoder_lr_multiplier")
        self.train_function = None  # traced with the old factor

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        loss = super().compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=training)
        if training and self.l2:
            loss += self.l2 * tf.add_n([tf.reduce_sum(tf.square(layer.kernel)) for layer in self.dense])
        return loss

    def train_step(self, data):
        # The encoder's learning rate by scaling its update: keep its variables from before the step and set
        # v = v_before + m * (v_after - v_before). For Adam and SGD (with momentum) that is exactly the optimizer
        # with learning rate m * lr for those variables, since their state sees the same raw gradients either
        # way. Scaling the gradients would not do: Adam divides each gradient by its own running scale.
        m = self.encoder_lr_multiplier
        scaled = list(self.features.trainable_variables) if m != 1.0 else []
        before = [tf.identity(v) for v in scaled]
        logs = super().train_step(data)
        for v, old in zip(scaled, before):
            v.assign(old + m * (v - old))
        return logs

    def serving_endpoints(self):
        """{name: (function, input_signature)} for `zoo.export`: classify(x) -> probabilities and class;
        encode(x) -> features."""
        def classify(x):
            probabilities = self(x)
            return {"probabilities": probabilities, "class": tf.argmax(probabilities, axis=-1)}

        x = [tf.TensorSpec([None, self.n_inputs], tf.float32, name="x")]
        return {"classify": (classify, x), "encode": (lambda x: {"features": self.features(x)}, x)}

    def predict_probabilities(self, x, batch_size=2000):
        """p(y | x) of each row of `x`, (n, n_classes) (NumPy in, NumPy out)."""
        return in_batches(self, checks.as_float_matrix(x, "x", width=self.n_inputs), batch_size)

    def predict_classes(self, x, batch_size=2000):
        """Predicted class of each row of `x` (NumPy in, NumPy out)."""
        return np.argmax(self.predict_probabilities(x, batch_size), axis=-1)
