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


def test_log_partition_monitor_logs_both_sides_of_log_z(tmp_path):
    x, xv, _ = _digits()
    model = RBM(8, seed=0)
    model.compile()
    monitor = zoo.training.LogPartitionMonitor(xv, train_x=x, every=1, n_betas=200, n_chains=16,
                                               reverse_examples=10, logdir=tmp_path)
    history = model.fit(x, batch_size=50, epochs=2, callbacks=[monitor], verbose=0)
    assert monitor.base == "data"
    scalars = _read(tmp_path)["scalars"]
    tags = ("log_z/forward", "log_z/reverse", "log_z/ess", "test_nll/lower", "test_nll/upper")
    values = {}
    for tag in tags:
        assert [e.step for e in scalars[tag]] == [1, 2], tag
        values[tag] = [float(tf.make_ndarray(e.tensor_proto)) for e in scalars[tag]]
        assert np.all(np.isfinite(values[tag])), tag
        np.testing.assert_allclose(history.history[tag], values[tag], rtol=1e-6)  # the same numbers in history
    assert all(0 < ess <= 16 for ess in values["log_z/ess"])
    # a tiny RBM: both estimates sit on the exact log Z, the bracket closes up to the estimates' noise
    exact = zoo.evaluation.exact_log_partition(model)
    assert values["log_z/forward"][-1] == pytest.approx(exact, abs=0.05)
    assert values["log_z/reverse"][-1] == pytest.approx(exact, abs=0.05)
    assert all(lo <= up + 0.05 for lo, up in zip(values["test_nll/lower"], values["test_nll/upper"]))


def test_log_partition_monitor_before_a_logger_and_its_argument_checks(tmp_path):
    x, xv, shape = _digits()
    model = RBM(8, seed=0)
    model.compile()
    # no train_x: a uniform base (never one fitted to the test data); no logdir: the logger after it writes
    monitor = zoo.training.LogPartitionMonitor(xv, every=2, n_betas=100, n_chains=8, reverse_examples=5)
    writer = tf.summary.create_file_writer(str(tmp_path))
    logger = zoo.training.TensorBoardLogger(writer, xv[:20], shape, every=2)
    model.fit(x, batch_size=50, epochs=3, callbacks=[monitor, logger], verbose=0)
    with writer.as_default(step=9):  # a writer the caller owns is left open
        assert tf.summary.scalar("still_open", 1.0)
    writer.close()
    assert monitor.base == "uniform"
    scalars = _read(tmp_path)["scalars"]
    assert [e.step for e in scalars["log_z/forward"]] == [1, 3]  # every 2 epochs and the last one
    assert [e.step for e in scalars["test_nll/upper"]] == [1, 3]
    assert [e.step for e in scalars["reconstruction_error"]] == [1, 2, 3]

    with pytest.raises(ValueError, match="n_betas must be an integer >= 2"):
        zoo.training.LogPartitionMonitor(xv, n_betas=1)
    with pytest.raises(ValueError, match="base='data' needs train_x"):
        zoo.training.LogPartitionMonitor(xv, base="data")
    with pytest.raises(ValueError, match="every"):
        zoo.training.LogPartitionMonitor(xv, every=0)
    with pytest.raises(ValueError, match="NaN"):
        zoo.training.LogPartitionMonitor(np.full((3, 64), np.nan))
    with pytest.raises(ValueError, match="test_x must have 64 columns"):  # at the start of fit, not after an epoch
        model.fit(x, batch_size=50, epochs=1, verbose=0,
                  callbacks=[zoo.training.LogPartitionMonitor(np.zeros((3, 10)))])
