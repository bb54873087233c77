"""Model folders: `model.keras` (the Keras model, for `zoo.load`, or `keras.models.load_model` after
`import zoo.models`), `saved_model/` (a TF SavedModel with named signatures, loadable by `tf.saved_model.load`
without zoo) and `card.json` (what it is, how it was made, what it measured), plus any PNGs. Written atomically: everything
goes to a temporary sibling folder that replaces the target only when complete, so a failure never leaves a
half-written model folder.

A published checkpoint holds what inference, evaluation and fine-tuning need: `save(..., training_state=False)`
leaves out the optimizer's slots and the model's own training state (an RBM's persistent chains), through the
model's `without_training_state()` when it has one."""
import datetime
import json
import os
import platform
import shutil
import tempfile
from pathlib import Path

from zoo import files

MODEL_FILE = "model.keras"
CARD_FILE = "card.json"
SAVED_MODEL_DIR = "saved_model"


def export_saved_model(model, path):
    """Write a SavedModel of `model` to `path` with one signature per `model.serving_endpoints()`."""
    import keras

    from zoo import capabilities

    capabilities.require(model, capabilities.Servable, "be exported as a SavedModel")
    archive = keras.export.ExportArchive()
    # no archive.track(model): the endpoints track the variables they use, and tracking the model as well
    # stores every weight twice (as the Keras variable and as its tf.Variable), doubling the folder's size
    for name, (function, signature) in model.serving_endpoints().items():
        archive.add_endpoint(name, function, input_signature=signature)
    archive.write_out(str(path), verbose=False)


def library_versions():
    import keras
    import numpy
    import tensorflow as tf
    import tensorflow_probability as tfp

    import zoo

    return {"zoo": zoo.__version__, "tensorflow": tf.__version__, "keras": keras.__version__,
            "tensorflow_probability": tfp.__version__, "numpy": numpy.__version__,
            "python": platform.python_version()}


def make_card(model, **fields):
    """A model card: the model's class and config, library versions, creation time, and `fields`."""
    return {"format": "zoo-card/1", "model": type(model).__name__, "config": model.get_config(),
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "versions": library_versions(), **fields}


def without_training_state(model):
    """A copy of `model` with what inference, evaluation and fine-tuning need: the model's own
    `without_training_state()` when it has one (an RBM drops its persistent chains), else a copy from its
    config with the same weights; either way uncompiled, so no optimizer slots."""
    from zoo import capabilities

    if capabilities.offers(model, capabilities.LeanCopy):
        return model.without_training_state()
    copy = type(model).from_config(model.get_config())
    if not copy.built:
        copy.build(model.input_shape if hasattr(model, "input_shape") else None)
    copy.set_weights(model.get_weights())
    return copy


def save(model, path, card=None, files=None, overwrite=False, saved_model=True, training_state=True):
    """Write `model.keras`, `saved_model/` (unless saved_model=False), `card.json` (`make_card(model)` by
    default) and `files` ({name: callable(path)}) into the folder `path`. training_state=False: a lean
    checkpoint (`without_training_state`), the form of the published archives."""
    if not training_state:
        model = without_training_state(model)
    card = make_card(model) if card is None else card
    path = Path(path)
    if path.exists() and not overwrite:
        raise ValueError(f"output folder {path} already exists: choose another or pass overwrite")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.tmp-"))
    try:
        tmp.chmod(0o755)
        model.save(tmp / MODEL_FILE)
        if saved_model:
            export_saved_model(model, tmp / SAVED_MODEL_DIR)
        (tmp / CARD_FILE).write_text(json.dumps(card, indent=2, sort_keys=True, default=_jsonable) + "\n")
        for name, write in (files or {}).items():
            write(tmp / name)
        old = None
        if path.exists():
            old = path.with_name(f".{path.name}.old-{os.getpid()}")
            os.replace(path, old)
        os.replace(tmp, path)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def update_card(path, **fields):
    """Set `fields` in the card.json of the model folder `path`, atomically (write aside, then replace)."""
    card_path = Path(path) / CARD_FILE
    card = read_card(path)
    card.update(fields)
    text = json.dumps(card, indent=2, sort_keys=True, default=_jsonable, allow_nan=True) + "\n"
    files.write_atomically(card_path, lambda tmp: tmp.write_text(text))
    return card


def lineage(card, model=None):
    """The training stages of a card, oldest first: its `lineage` when it was trained in stages, else one
    stage of its own command and epochs; `model` names the folder or registered model of the last stage.
    Each stage: {"stage", "command", "epochs", "result" (the NLL brackets its metrics measured), ...}."""
    stages = [dict(stage) for stage in card.get("lineage") or []]
    if not stages:  # a card of before lineages: the nested chain of the models it continued, newest first
        starts, start = [], card.get("initialized_from")
        while isinstance(start, dict):
            starts.append({"model": start.get("model"), "command": start.get("command")})
            start = start.get("initialized_from")
        stages = [{**s, "stage": i + 1} for i, s in enumerate(reversed(starts))]
        stages.append({"stage": len(stages) + 1, "command": card.get("command"), "epochs": card.get("epochs")})
    result = stage_result(card.get("metrics"))
    if result and not stages[-1].get("result"):
        stages[-1]["result"] = result
    if model is not None:
        stages[-1]["model"] = str(model)
    return stages


def stage_result(metrics):
    """The headline of a card's metrics as a stage's result: {"test_nll": [lower, upper], "train_nll": ...}."""
    result = {}
    for key in ("test_nll", "train_nll"):
        value = (metrics or {}).get(key)
        if isinstance(value, dict) and value.get("lower") is not None and value.get("upper") is not None:
            result[key] = [value["lower"], value["upper"]]
    return result


def read_card(path):
    """The card.json of the model folder `path` as a dict, with a clear error if missing or not JSON."""
    card_path = Path(path) / CARD_FILE
    if not Path(path).is_dir():
        raise ValueError(f"{path} is not a model folder (no such directory)")
    try:
        card = json.loads(card_path.read_text())
    except FileNotFoundError:
        raise ValueError(f"model folder {path} is missing {CARD_FILE}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{card_path} does not parse as JSON: {exc}") from None
    if not isinstance(card, dict):
        raise ValueError(f"{card_path} is not a model card (a JSON object)")
    return card


def load_folder(path):
    """(model, card) from a model folder, with a clear error for anything missing or corrupted."""
    path = Path(path)
    if not path.is_dir():
        raise ValueError(f"{path} is not a model folder (no such directory)")
    for name in (MODEL_FILE, CARD_FILE):
        if not (path / name).is_file():
            raise ValueError(f"model folder {path} is missing {name}")
    card = read_card(path)
    import keras

    import zoo.models  # noqa: F401  registers the zoo's classes with Keras

    try:
        model = keras.models.load_model(path / MODEL_FILE)
    except Exception as exc:
        raise ValueError(f"{path / MODEL_FILE} could not be loaded: {exc}") from None
    return model, card


def _jsonable(obj):
    if hasattr(obj, "tolist"):
        return obj.tolist()
    return str(obj)
