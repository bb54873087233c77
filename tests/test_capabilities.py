"""The house's interfaces: capabilities, the lean import, lean checkpoints."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from zoo import capabilities, export
from zoo.models import RBM


def test_what_each_model_offers(toy_latent_class):
    rbm = RBM(4, n_visible=6)
    assert capabilities.of(rbm) == ["energy model", "exact enumeration", "sampler", "encoder", "servable"]
    assert capabilities.of(toy_latent_class()) == ["latent-variable model", "sampler"]
    assert capabilities.of(object()) == []


def test_an_attribute_is_not_a_capability():
    """A model that stores its inference network as `encoder` (a callable keras.Model) does not encode."""
    import keras

    class WithNetwork:
        def __init__(self):
            self.encoder = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])

        def sample(self, n, seed=None):
            return n

    assert capabilities.of(WithNetwork()) == ["sampler"]
    assert capabilities.methods(capabilities.EnergyModel) == ["unnormalized_log_prob", "visible_kind",
                                                               "base_parameters", "annealing_path", "validate_data"]


def test_require_names_what_the_model_can_do(toy_latent_class):
    rbm = RBM(4, n_visible=6)
    assert capabilities.require(rbm, capabilities.EnergyModel, "anneal") is rbm
    with pytest.raises(ValueError) as exc:
        capabilities.require(toy_latent_class(), (capabilities.EnergyModel, capabilities.Encoder), "fly")
    message = str(exc.value)
    assert "\n" not in message
    assert message.startswith("ToyHelmholtz cannot fly: that needs a model with the capability energy model or "
                              "encoder; ToyHelmholtz offers latent-variable model")


def _python(code, env=None):
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env=env)


def test_import_zoo_is_lean():
    """`import zoo` loads no TensorFlow, changes no environment variable and leaves stderr alone; the
    names it offers load TensorFlow on first use, still without touching the environment."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TF_")}
    code = """
import json, os, sys
before = dict(os.environ)
import zoo
lean = "tensorflow" not in sys.modules and "keras" not in sys.modules
print("to stderr", file=sys.stderr, flush=True)
os.write(2, b"fd 2 reaches the caller\\n")
unchanged = dict(os.environ) == before
zoo.RBM, zoo.load, zoo.evaluation.ais
print(json.dumps({"lean": lean, "unchanged": unchanged, "unchanged_after_tf": dict(os.environ) == before,
                  "tf": "tensorflow" in sys.modules}))
"""
    result = _python(code, env)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report == {"lean": True, "unchanged": True, "unchanged_after_tf": True, "tf": True}
    assert "to stderr" in result.stderr and "fd 2 reaches the caller" in result.stderr


def test_the_command_line_answers_without_tensorflow():
    code = """
import sys
from zoo import cli
for argv in (["--help"], ["train", "rbm", "--help"]):
    try:
        cli.main(argv)
    except SystemExit:
        pass
cli.main(["list"])
print("TF LOADED" if "tensorflow" in sys.modules else "NO TF")
"""
    result = _python(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "NO TF"
    assert "--temperatures" in result.stdout and "rbm500-bmnist" in result.stdout


@pytest.fixture(scope="module")
def trained_rbm():
    """An RBM with every kind of training state: tempering chains, centering offsets, SGD momentum."""
    from zoo import data
    x = (data.load("digits").train.x > 0.5).astype("float32")
    model = RBM(8, n_visible=64, persistent=True, n_chains=20, n_temperatures=3, min_beta=0.5, centering=True,
                seed=0)
    import keras
    model.compile(keras.optimizers.SGD(0.01, momentum=0.9))
    model.fit(x, batch_size=50, epochs=1, verbose=0)
    return model, x


def test_without_training_state_keeps_the_parameters_only(trained_rbm):
    model, x = trained_rbm
    lean = model.without_training_state()
    assert lean.training_state is False and model.training_state is True
    names = sorted(v.name for v in lean.variables if "seed_generator" not in v.path)
    assert names == ["cd_k", "hidden_bias", "kernel", "visible_bias"]
    assert {"persistent_chains", "visible_offset", "hidden_offset"} <= {v.name for v in model.variables}
    for variable in lean.variables:
        if "seed_generator" not in variable.path:
            np.testing.assert_array_equal(variable.numpy(), next(v for v in model.variables
                                                                  if v.path == variable.path).numpy())
    v = tf.constant(x[:20], tf.float64)
    np.testing.assert_array_equal(lean.free_energy(v).numpy(), model.free_energy(v).numpy())
    assert lean.get_config() == {**model.get_config(), "training_state": False}


def test_a_lean_checkpoint_is_smaller_and_answers_the_same(trained_rbm, tmp_path):
    model, x = trained_rbm
    full = export.save(model, tmp_path / "full", saved_model=True)
    lean = export.save(model, tmp_path / "lean", saved_model=True, training_state=False)
    size = {p.name: (p / export.MODEL_FILE).stat().st_size for p in (full, lean)}
    assert size["lean"] < size["full"]
    loaded, card = export.load_folder(lean)
    assert loaded.training_state is False and card["config"]["training_state"] is False
    assert not hasattr(loaded, "persistent_chains") and getattr(loaded, "optimizer", None) is None
    v = tf.constant(x[:20], tf.float64)
    np.testing.assert_allclose(loaded.free_energy(v).numpy(), model.free_energy(v).numpy())
    served = tf.saved_model.load(str(lean / export.SAVED_MODEL_DIR))
    np.testing.assert_allclose(served.signatures["free_energy"](v=tf.constant(x[:20]))["free_energy"].numpy(),
                               model.free_energy(tf.constant(x[:20])).numpy(), rtol=1e-5)


def test_training_a_lean_checkpoint_starts_a_fresh_state_and_keeps_its_biases(trained_rbm, tmp_path):
    model, x = trained_rbm
    loaded, _ = export.load_folder(export.save(model, tmp_path / "lean", training_state=False))
    bias = loaded.visible_bias.numpy().copy()
    loaded.prepare_visible_bias(x)  # a trained model: the data's means must not replace its biases
    np.testing.assert_array_equal(loaded.visible_bias.numpy(), bias)
    loaded.fit(x, batch_size=50, epochs=1, verbose=0)
    assert loaded.training_state and loaded.persistent_chains.shape == model.persistent_chains.shape
    again, _ = export.load_folder(export.save(loaded, tmp_path / "continued"))
    np.testing.assert_array_equal(again.persistent_chains.numpy(), loaded.persistent_chains.numpy())


def test_the_lineage_of_a_card_of_before_lineages():
    """A stage folder written before cards carried `lineage` has the nested `initialized_from` chain."""
    card = {"command": "zoo train rbm --init-from b --out c", "epochs": 3,
            "metrics": {"test_nll": {"lower": 1.0, "upper": 2.0}},
            "initialized_from": {"model": "b", "command": "zoo train rbm --init-from a --out b",
                                 "initialized_from": {"model": "a", "command": "zoo train rbm --out a"}}}
    assert export.lineage(card, model="c") == [
        {"stage": 1, "model": "a", "command": "zoo train rbm --out a"},
        {"stage": 2, "model": "b", "command": "zoo train rbm --init-from a --out b"},
        {"stage": 3, "command": "zoo train rbm --init-from b --out c", "epochs": 3, "model": "c",
         "result": {"test_nll": [1.0, 2.0]}}]


#: what each registered family offers (user-facing capabilities, then the hooks of the house); a family added to
#: zoo.families without a row here fails, and so does a capability gained or lost without changing this table
CAPABILITY_TABLE = {
    "rbm": ["energy model", "exact enumeration", "sampler", "encoder", "servable", "chain sampler",
            "initializable", "data-initialised", "describable", "training summaries", "lean copy"],
    "dbm": ["energy model", "exact enumeration", "sampler", "encoder", "servable", "chain sampler",
            "initializable", "data-initialised", "describable", "training summaries", "lean copy"],
    "helmholtz": ["latent-variable model", "sampler", "encoder", "servable", "trainable bound", "initializable",
                  "data-initialised", "describable", "training summaries", "summary scalars"],
    "bihm": ["latent-variable model", "normalised geometric mean", "sampler", "inpainter", "encoder", "servable",
             "chain sampler", "animated sampler", "trainable bound", "initializable", "data-initialised",
             "describable", "training summaries", "summary scalars"],
    "adgm": ["latent-variable model", "sampler", "servable", "trainable bound", "data-initialised", "describable",
             "training summaries"],
    "hybrid": ["latent-variable model", "sampler", "classifier", "servable", "describable", "training summaries"],
    "implicit-hybrid": ["sampler", "encoder", "classifier", "servable", "describable", "training summaries"],
    "classifier": ["encoder", "classifier", "servable"],
}


def _tiny_family_members():
    from zoo import models

    rbm = models.RBM(3, n_visible=4)
    hybrid = models.HybridModel(models.HelmholtzMachine([3, 2], n_visible=4), n_classes=3, hidden=(3,))
    hybrid(np.zeros((1, 4), "float32"))
    return {"rbm": rbm, "dbm": models.DBM([3, 2], n_visible=4),
            "helmholtz": models.HelmholtzMachine([3, 2], n_visible=4), "bihm": models.BiHM([3, 2], n_visible=4),
            "adgm": models.AuxiliaryDeepGenerativeModel(2, 2, hidden=(3,), n_visible=4), "hybrid": hybrid,
            "implicit-hybrid": models.ImplicitHybrid(4, n_classes=3, n_latent=2, generator_hidden=(3,),
                                                     encoder_hidden=(3,), discriminator_hidden=(3,),
                                                     latent_hidden=(3,)),
            "classifier": models.Classifier(rbm.encoder(), 3)}


def test_every_registered_family_and_its_capability_table():
    """The families are registered once (zoo.families): zoo.models and `import zoo` export exactly them, `zoo train`
    lists exactly the trainable ones, and each offers the capabilities of CAPABILITY_TABLE (printed with -s)."""
    import zoo
    from zoo import cli, families, models

    members = _tiny_family_members()
    assert [f.name for f in families.FAMILIES] == list(CAPABILITY_TABLE) == list(members)
    assert models.__all__ == [f.cls for f in families.FAMILIES]
    hooks = [name for name, _, _ in capabilities.CAPABILITIES]
    print("\n| family | class | capabilities |\n|---|---|---|")
    for family in families.FAMILIES:
        model = members[family.name]
        assert type(model) is getattr(zoo, family.cls) is family.load_class()
        offered = capabilities.of(model, capabilities.CAPABILITIES)
        print(f"| {family.name} | {family.cls} | {', '.join(offered)} |")
        assert offered == CAPABILITY_TABLE[family.name], family.name
        assert sorted(offered, key=hooks.index) == offered
    train = cli.build_parser()._subparsers._group_actions[0].choices["train"]
    listed = list(train._subparsers._group_actions[0].choices)
    assert listed == [f.name for f in families.trainable()]


def test_a_protocol_can_require_keywords():
    """`sample` is one method, but only a model whose `sample` runs a chain takes n_steps (zoo sample --steps)."""
    class Ancestral:
        def sample(self, n, seed=None):
            return n

    class Chain:
        def sample(self, n, seed=None, n_steps=10):
            return n

    assert capabilities.offers(Chain(), capabilities.ChainSampler)
    assert capabilities.offers(Ancestral(), capabilities.Sampler)
    assert not capabilities.offers(Ancestral(), capabilities.ChainSampler)
    assert not capabilities.offers(Chain(), capabilities.AnimatedSampler)
