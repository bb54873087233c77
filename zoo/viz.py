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


def save_gif(path, grids, seconds_per_frame=0.1):
    """Write tiled float arrays in [0, 1] (grey, all of one shape) to `path` as an animated GIF, atomically; the
    last frame is held three times as long."""
    from PIL import Image

    if not grids:
        raise ValueError("no frames to animate")
    frames = [Image.fromarray(to_uint8(grid)[..., 0] if np.ndim(grid) == 2 else to_uint8(grid)) for grid in grids]
    duration = int(round(1000 * seconds_per_frame))
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)

    def write(tmp):
        frames[0].save(tmp, format="GIF", save_all=True, append_images=frames[1:], loop=0,
                       duration=[duration] * (len(frames) - 1) + [3 * duration])

    files.write_atomically(path, write)
    return path


MASKS = ("top", "bottom", "left", "right", "random")


def inpainting_mask(name, image_shape, seed=0):
    """A flat mask of 1 (known pixels) and 0 (pixels to fill in) for images of `image_shape`: "top", "bottom",
    "left", "right" hide that half of the image; "random" hides each pixel with probability 1/2 (seeded)."""
    if name not in MASKS:
        raise ValueError(f"unknown mask {name!r}: expected one of {', '.join(MASKS)}, or a .npy or .png file")
    h, w = (int(s) for s in image_shape[:2])
    rows, cols = np.mgrid[:h, :w]
    hidden = {"top": rows < h // 2, "bottom": rows >= h // 2, "left": cols < w // 2, "right": cols >= w // 2}
    if name == "random":
        known = np.random.default_rng(seed).random((h, w)) < 0.5
    else:
        known = ~hidden[name]
    return known.astype(np.float32).ravel()


def inpainting_rows(x, mask, completions):
    """Flat images laid out a row per image (tile them with n_cols = chains + 2): the image, its known pixels
    (the others grey), then its completions; x (n, pixels), mask (pixels,) or (n, pixels), completions
    (n, chains, pixels)."""
    x = np.asarray(x)
    shown = np.where(np.asarray(mask) > 0, x, 0.5)
    return np.concatenate([x[:, None], shown[:, None], np.asarray(completions)], axis=1).reshape(-1, x.shape[1])


def pairs(x, reconstructions):
    """Flat images x[0], reconstructions[0], x[1], ... (tile them with an even n_cols: each image beside its
    reconstruction)."""
    x = np.asarray(x)
    return np.stack([x, np.asarray(reconstructions)], axis=1).reshape(-1, x.shape[-1])


def read_array(path, what):
    """The values of a .npy file (no pickles), or of a PNG as grey values in [0, 1] (white 1), as float32."""
    import tensorflow as tf

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ValueError(f"cannot read the {what} {path}: no such file")
    try:
        if path.lower().endswith(".npy"):
            values = np.load(path, allow_pickle=False)
        elif path.lower().endswith(".png"):
            values = tf.io.decode_png(tf.io.read_file(path), channels=1).numpy()[..., 0] / 255.0
        else:
            raise ValueError("expected a .npy or .png file")
        return np.asarray(values, np.float32)
    except (OSError, ValueError, TypeError, tf.errors.OpError) as error:
        raise ValueError(f"cannot read the {what} {path}: {str(error).splitlines()[0][:200]}") from None


def read_images(path, n_pixels):
    """Flat images (n, n_pixels) from a .npy file (n x n_pixels, n x height x width, or one image) or a PNG
    (one image)."""
    images = read_array(path, "images")
    if images.ndim == 1 or (images.ndim == 2 and images.shape[1] != n_pixels):  # one image, flat or 2-d
        images = images.reshape(1, -1)
    if images.ndim < 2 or int(np.prod(images.shape[1:])) != n_pixels or not len(images):
        raise ValueError(f"the images in {os.fspath(path)} have shape {images.shape}: expected images of "
                         f"{n_pixels} pixels (n x {n_pixels}, n x height x width, or one image)")
    return images.reshape(-1, n_pixels)


def read_mask(path, n_pixels):
    """A mask from a .npy file or a PNG (known pixels non-zero / white), flattened to `n_pixels`."""
    mask = read_array(path, "mask")
    if mask.size != n_pixels:
        raise ValueError(f"the mask {os.fspath(path)} has {mask.size} pixels, the model {n_pixels}")
    return (mask.ravel() > 0.5).astype(np.float32)
