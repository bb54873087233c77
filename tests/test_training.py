"""TensorBoard logs read back with TensorBoard's own event reader; the free-energy gap; the NaN guard."""
import keras
import numpy as np
import pytest
import tensorflow as tf
from tensorboard.backend.event_processing import event_accumulator

import zoo
from zoo.models import RBM


def _digits():
    ds = zoo.data.load("digits")
    return (ds.train.x > 0.5).astype(np.float32), (ds.validation.x > 0.5).astype(np.float32), ds.image_shape


def _read(logdir):
    acc = event_accumulator.EventAccumulator(str(logdir), size_guidance={event_accumulator.TENSORS: 0})
    acc.Reload()
    by_plugin = {}
    for tag in acc.Tags()["tensors"]:
        plugin = acc.SummaryMetadata(tag).plugin_data.plugin_name
        by_plugin.setdefault(plugin, {})[tag] = acc.Tensors(tag)
    return by_plugin


def test_tensorboard_logger_writes_scalars_images_and_histograms(tmp_path):
    x, xv, shape = _digits()
    model = RBM(16, seed=0, persistent=True)
    model.compile()
    callbacks = [zoo.training.FreeEnergyGap(x[:200], xv[:200]),
                 zoo.training.TensorBoardLogger(tmp_path, xv[:50], shape, every=2)]
    model.fit(x, batch_size=50, epochs=3, validation_data=xv, callbacks=callbacks, verbose=0)
    logs = _read(tmp_path)

    scalars = logs["scalars"]
    for tag in ("reconstruction_error", "pseudo_log_likelihood", "free_energy", "free_energy_gap",
                "val_reconstruction_error", "learning_rate"):
        assert [e.step for e in scalars[tag]] == [1, 2, 3], tag
    gaps = [float(tf.make_ndarray(e.tensor_proto)) for e in scalars["free_energy_gap"]]
    assert all(np.isfinite(gaps))

    images = logs["images"]
    assert set(images) == {"filters", "reconstructions", "negative_particles"}
    assert [e.step for e in images["filters"]] == [1, 3]  # every 2 epochs, and the last one
    width, height = (int(s) for s in images["filters"][0].tensor_proto.string_val[:2])
    assert width > 8 and height > 8

    hists = logs["histograms"]
    assert {"kernel", "visible_bias", "hidden_bias", "hidden_activations"} <= set(hists)


def test_free_energy_gap_is_validation_minus_train():
    x, xv, _ = _digits()
    model = RBM(8, n_visible=64, seed=0)
    gap = zoo.training.FreeEnergyGap(x[:100], xv[:100])
    gap.set_model(model)
    logs = {}
    gap.on_epoch_end(0, logs)
    expected = model.free_energy(xv[:100]).numpy().mean() - model.free_energy(x[:100]).numpy().mean()
    assert logs["free_energy_gap"] == pytest.approx(expected, abs=1e-5)


def test_divergence_raises_a_clear_error():
    x, _, _ = _digits()
    model = RBM(8, seed=0)
    model.compile()
    # pipelines are not checked up front (only arrays are), so a NaN can reach training: the guard stops it
    x[5, 3] = np.nan
    with pytest.raises(FloatingPointError, match="diverged at epoch 1.*lower the learning rate"):
        model.fit(tf.data.Dataset.from_tensor_slices(x).batch(50), epochs=3, verbose=0,
                  callbacks=[zoo.training.RaiseOnNaN()])


def test_tiles_and_png(tmp_path):
    grid = zoo.viz.tile(np.random.default_rng(0).random((10, 64)), (8, 8))
    assert grid.shape == (3 * 9 + 1, 4 * 9 + 1)  # 10 images: 4 columns, 3 rows, 1-pixel borders
    path = zoo.viz.save_png(tmp_path / "t.png", grid)
    img = tf.io.decode_png(open(path, "rb").read()).numpy()
    assert img.shape == grid.shape + (1,)
    np.testing.assert_array_equal(img[..., 0], zoo.viz.to_uint8(grid)[..., 0])
    with pytest.raises(ValueError, match="shape"):
        zoo.viz.tile(np.zeros((3, 10)), (8, 8))
