"""Import TensorFlow with the native stderr muted: for the command line's own process only.

TensorFlow's C++ start-up lines (CUDA probing on a CPU-only machine) are written before its logging can be
configured, and would bury the one-line messages of the CLI. Python exceptions still surface: stderr is
restored before anything propagates. `import zoo` never calls this: a library leaves the streams alone."""
import os
import sys


def import_tensorflow_quietly():
    if "tensorflow" in sys.modules:
        return
    try:
        sys.stderr.flush()
        saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    except (OSError, ValueError):  # no real stderr (embedded interpreters): import as usual
        import tensorflow  # noqa: F401
        return
    try:
        os.dup2(devnull, 2)
        import tensorflow as tf
        import tensorflow_probability  # noqa: F401

        tf.config.list_physical_devices()
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
