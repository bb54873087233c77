"""Image tiles of samples and filters, and PNG files (written atomically, with TensorFlow's encoder)."""
import math
import os

import numpy as np

from zoo import files


def tile(images, image_shape, n_cols=None, scale_each=False, padding=1):
    """Tile flat images (n, prod(image_shape)) into one float array in [0, 1] of shape (H, W[, C]).

    `scale_each` maps each image to [0, 1] on its own (filters); otherwise values are clipped to [0, 1].
    """
    images = np.asarray(images, np.float64)
    image_shape = tuple(int(s) for s in image_shape)
    if images.ndim != 2 or images.shape[1] != int(np.prod(image_shape)):
        raise ValueError(f"images must have shape (n, {int(np.prod(image_shape))}) for image_shape "
                         f"{image_shape}, got {images.shape}")
    n = images.shape[0]
    if n == 0:
        raise ValueError("no images to tile")
    if scale_each:
        lo = images.min(axis=1, keepdims=True)
        span = np.maximum(images.max(axis=1, keepdims=True) - lo, 1e-12)
        images = (images - lo) / span
    images = np.clip(np.nan_to_num(images), 0.0, 1.0).reshape((n,) + image_shape)
    n_cols = n_cols or int(math.ceil(math.sqrt(n)))
    n_rows = int(math.ceil(n / n_cols))
    h, w = image_shape[:2]
    channels = image_shape[2:]
    grid = np.ones((n_rows * (h + padding) + padding, n_cols * (w + padding) + padding) + channels)
    for i, img in enumerate(images):
        r, c = divmod(i, n_cols)
        top, left = padding + r * (h + padding), padding + c * (w + padding)
        grid[top:top + h, left:left + w] = img
    return grid


def filters_to_images(kernel, n=100):
    """The first `n` hidden units' incoming weights (columns of an n_visible x n_hidden kernel) as images."""
    kernel = np.asarray(kernel)
    return kernel[:, :n].T


def to_uint8(grid):
    grid = np.asarray(grid)
    if grid.ndim == 2:
        grid = grid[..., None]
    return np.round(np.clip(grid, 0, 1) * 255).astype(np.uint8)


def save_png(path, grid):
    """Write a tiled float array in [0, 1] to `path` as PNG, atomically."""
    import tensorflow as tf

    data = tf.io.encode_png(to_uint8(grid)).numpy()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    files.write_atomically(path, lambda tmp: tmp.write_bytes(data))
    return path
