"""`zoo inpaint`: hidden pixels of test images filled in by Markov chains of a model that inpaints (a BiHM)."""
import os

from zoo.cli.args import option, positive_int, prepare_tensorflow, trained_on
from zoo.cli.sample import GIF_FRAMES, check_image_paths


def add_parser(commands):
    inpaint = commands.add_parser(
        "inpaint", help="fill in hidden pixels of test images by a Markov chain (BiHM)",
        description="Hide part of each of the first --n test images and fill it in: --chains Markov chains per "
                    "image, each clamping the known pixels and leaving the model's conditional of the hidden ones "
                    "given them invariant. The PNG has one row per image: the image, the known pixels (hidden ones "
                    "grey), then the chains' completions.",
        epilog="example: zoo inpaint bihm-12l-bmnist --mask bottom --n 10 --chains 10 --steps 250 --out inpaint.png")
    inpaint.set_defaults(func=main)
    inpaint.add_argument("model", help="model folder or registered name (see zoo list)")
    inpaint.add_argument("--mask", default="bottom", help="the pixels to fill in: top, bottom, left or right (that "
                         "half of the image), random (each pixel with probability 1/2), or a .npy or .png file of the "
                         "image's shape, non-zero where a pixel is known (default: %(default)s)")
    inpaint.add_argument("--n", type=positive_int, default=10, help="test images (default: %(default)s)")
    inpaint.add_argument("--chains", type=positive_int, default=10, help="chains per image (default: %(default)s)")
    inpaint.add_argument("--steps", type=positive_int, default=250, help="sweeps of each chain (default: %(default)s)")
    inpaint.add_argument("--dataset", metavar="NAME", help="whose test images (default: the card's dataset, "
                         "binarized_mnist for a model trained on mnist with dynamic binarisation)")
    option(inpaint, "--seed", 0)
    inpaint.add_argument("--out", default="inpaint.png", help="PNG file (default: %(default)s)")
    inpaint.add_argument("--gif", metavar="FILE", help="also an animated GIF of the chains")
    return inpaint


def main(args, argv):
    prepare_tensorflow()
    import numpy as np

    from zoo import capabilities, data, export, hub, viz

    check_image_paths(args.out, args.gif)
    model, card = export.load_folder(hub.resolve(args.model))
    capabilities.require(model, capabilities.Inpainter, "inpaint")
    image_shape = card.get("image_shape")
    if not image_shape:
        raise ValueError(f"{args.model}/card.json has no image_shape: cannot lay out the images")
    n_pixels = int(np.prod(image_shape))
    from_file = args.mask.lower().endswith((".npy", ".png"))
    mask = (viz.read_mask(args.mask, n_pixels) if from_file
            else viz.inpainting_mask(args.mask, image_shape, seed=args.seed))
    dataset = data.load(args.dataset or trained_on(card))
    if args.n > dataset.test.n:
        raise ValueError(f"--n {args.n} is more than the {dataset.test.n} test images of {dataset.name}")
    x = model.validate_data(dataset.test.x[:args.n], f"dataset {dataset.name!r} (test split)")
    result = model.inpaint(x, mask, n_chains=args.chains, n_steps=args.steps, seed=args.seed,
                           frames=GIF_FRAMES if args.gif else 0)
    completions, frames = result if args.gif else (result, None)
    n_cols = args.chains + 2  # per image: the image, the known pixels on grey, the completions
    if frames is not None:
        viz.save_gif(args.gif, [viz.tile(viz.inpainting_rows(x, mask, frame), image_shape, n_cols=n_cols)
                                for frame in frames])
    viz.save_png(args.out, viz.tile(viz.inpainting_rows(x, mask, completions), image_shape, n_cols=n_cols))
    print(f"{args.n} images x {args.chains} chains, {args.steps} steps, mask {args.mask}: "
          f"{os.path.abspath(args.out)}" + (f" (and {args.gif})" if args.gif else ""))
    return 0
