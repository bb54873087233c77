"""zoo.export: model folders with model.keras, a SavedModel that loads without zoo, and card.json."""
import json
import subprocess
import sys

import keras
import numpy as np
import pytest

import zoo
from zoo import export


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    model = zoo.RBM(5, n_visible=6, seed=0, weight_stddev=0.5)
    model.visible_bias.assign(np.linspace(-1, 1, 6).astype(np.float32))
    path = export.save(model, tmp_path_factory.mktemp("models") / "tiny",
                       export.make_card(model, name="tiny", dataset="digits"))
    return model, path


def test_folder_holds_the_three_parts(saved):
    _, path = saved
    assert {p.name for p in path.iterdir()} == {"model.keras", "saved_model", "card.json"}
    card = json.loads((path / "card.json").read_text())
    assert card["model"] == "RBM" and card["name"] == "tiny" and card["config"]["n_hidden"] == 5
    assert set(card["versions"]) >= {"tensorflow", "keras", "zoo"}


def test_saved_model_loads_and_matches_in_a_process_without_zoo(saved):
    model, path = saved
    v = (np.random.default_rng(0).random((4, 6)) < 0.5).astype(np.float32)
    script = f"""
import json, sys
import numpy as np, tensorflow as tf
loaded = tf.saved_model.load({str(path / "saved_model")!r})
v = tf.constant({v.tolist()!r}, tf.float32)
sig = loaded.signatures
out = {{"names": sorted(sig),
        "free_energy": sig["free_energy"](v=v)["free_energy"].numpy().tolist(),
        "encode": sig["encode"](x=v)["features"].numpy().tolist(),
        "reconstruct": sig["reconstruct"](v=v)["reconstruction"].numpy().tolist(),
        "samples": sig["sample"](n=tf.constant(3), n_steps=tf.constant(10), seed=tf.constant(1))["samples"].numpy().tolist(),
        "zoo_imported": "zoo" in sys.modules}}
print(json.dumps(out))
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert not out["zoo_imported"]
    assert set(out["names"]) - {"serving_default"} == {"free_energy", "encode", "reconstruct", "sample"}
    np.testing.assert_allclose(out["free_energy"], model.free_energy(v).numpy(), rtol=1e-6)
    np.testing.assert_allclose(out["encode"], model.transform(v), rtol=1e-6)
    np.testing.assert_allclose(out["reconstruct"], model.reconstruct(v), rtol=1e-6)
    samples = np.array(out["samples"])
    assert samples.shape == (3, 6) and np.all((samples >= 0) & (samples <= 1))


def test_saved_model_stores_each_weight_once(saved):
    import tensorflow as tf

    model, path = saved
    stored = [shape for name, shape in tf.train.list_variables(str(path / "saved_model" / "variables" / "variables"))
              if name != "_CHECKPOINTABLE_OBJECT_GRAPH"]
    weights = [list(w.shape) for w in model.weights if w.trainable]
    # every weight once, plus only the few scalars of state the endpoints use (the sampler's seed)
    assert sorted(s for s in stored if s in weights) == sorted(weights)
    assert sum(int(np.prod(s)) for s in stored) < sum(int(np.prod(w)) for w in weights) + 10


def test_keras_file_reloads_for_fine_tuning(saved):
    model, path = saved
    loaded = keras.models.load_model(path / "model.keras")
    v = np.ones((2, 6), np.float32)
    np.testing.assert_array_equal(loaded.free_energy(v).numpy(), model.free_energy(v).numpy())
    assert [w.name for w in loaded.trainable_weights] == [w.name for w in model.trainable_weights]


def test_broken_folders_give_clear_errors(saved, tmp_path):
    _, path = saved
    with pytest.raises(ValueError, match="no such directory"):
        export.load_folder(tmp_path / "nothing")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "model.keras").write_bytes((path / "model.keras").read_bytes())
    with pytest.raises(ValueError, match="missing card.json"):
        export.load_folder(broken)
    (broken / "card.json").write_text("{not json")
    with pytest.raises(ValueError, match="does not parse"):
        export.load_folder(broken)
    (broken / "card.json").write_text("{}")
    (broken / "model.keras").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="could not be loaded"):
        export.load_folder(broken)


def test_a_failed_save_leaves_nothing(tmp_path):
    model = zoo.RBM(3, n_visible=4, seed=0)

    def fail(_):
        raise OSError("disk full")
    with pytest.raises(OSError, match="disk full"):
        export.save(model, tmp_path / "m", files={"x.png": fail})
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="already exists"):
        export.save(model, tmp_path, saved_model=False)
