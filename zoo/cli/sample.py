"""`zoo sample`: samples of any model that can sample, tiled into a PNG (and the chains as a GIF)."""
import os

from zoo.cli.args import nonnegative_int, option, positive_int, prepare_tensorflow

GIF_FRAMES = 26  # the start and 25 points along the chains


def add_parser(commands):
    sample = commands.add_parser("sample", help="draw samples from a trained model into a PNG",
                                 description="Draw samples from a trained model (any model that can sample: an RBM "
                                             "or a DBM by Gibbs chains, a Helmholtz machine ancestrally, a BiHM by "
                                             "its exact chain from ancestral samples of p) and tile them into a PNG.")
    sample.set_defaults(func=main)
    sample.add_argument("model", help="model folder or registered name (see zoo list)")
    sample.add_argument("--n", type=positive_int, default=100, help="number of samples (default: %(default)s)")
    sample.add_argument("--steps", type=nonnegative_int, help="Markov chain steps, for models that sample by a "
                        "chain (an RBM or a DBM: Gibbs sweeps; a BiHM: sweeps of its chain; default: the model's own, "
                        "1000 for an RBM or a DBM, 250 for a BiHM)")
    option(sample, "--seed", 0)
    sample.add_argument("--out", default="samples.png", help="PNG file (default: %(default)s)")
    sample.add_argument("--gif", metavar="FILE", help="also an animated GIF of the chains (models that sample by a "
                        "chain with frames: a BiHM)")
    return sample


def main(args, argv):
    prepare_tensorflow()
    from zoo import capabilities, export, hub, viz

    model, card = export.load_folder(hub.resolve(args.model))
    capabilities.require(model, capabilities.Sampler, "sample")
    image_shape = card.get("image_shape")
    if not image_shape:
        raise ValueError(f"{args.model}/card.json has no image_shape: cannot tile the samples")
    steps = {} if args.steps is None else {"n_steps": args.steps}
    if steps and not capabilities.offers(model, capabilities.ChainSampler):
        raise ValueError(f"{type(model).__name__} samples without a Markov chain: --steps does not apply")
    if args.gif and not capabilities.offers(model, capabilities.AnimatedSampler):
        raise ValueError(f"{type(model).__name__} has no chain to animate: --gif does not apply")
    check_image_paths(args.out, args.gif)
    if args.gif:
        samples, frames = model.sample(args.n, seed=args.seed, frames=GIF_FRAMES, **steps)
        viz.save_gif(args.gif, [viz.tile(frame, image_shape) for frame in frames])
    else:
        samples = model.sample(args.n, seed=args.seed, **steps)
    viz.save_png(args.out, viz.tile(samples, image_shape))
    how = f" after {args.steps} Markov chain steps" if steps else ""
    print(f"{args.n} samples{how}: {os.path.abspath(args.out)}" + (f" (and {args.gif})" if args.gif else ""))
    return 0


def check_image_paths(png, gif):
    """--out must name a .png file and --gif (if given) a .gif file."""
    if not png.lower().endswith(".png"):
        raise ValueError(f"--out must name a .png file, got {png!r}")
    if gif is not None and not gif.lower().endswith(".gif"):
        raise ValueError(f"--gif must name a .gif file, got {gif!r}")
