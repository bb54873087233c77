"""`zoo classify`: the class of each image of .npy or .png files, by a model that classifies, as CSV."""
import os
from pathlib import Path

from zoo.cli.args import prepare_tensorflow


def add_parser(commands):
    classify = commands.add_parser(
        "classify", help="the class of each image, by a classifier (a hybrid, a zoo finetune --save folder)",
        description="Predict the class of each image of the INPUT files with a model that classifies (a deep "
                    "hybrid model, or a classifier saved by zoo finetune --save): .npy arrays (n x pixels, n x "
                    "height x width, or one image) or PNG files (one grey image each, white 1), values in [0, 1]. "
                    "Prints CSV (file, index, class, probability of that class) or writes it to --out.",
        epilog="example: zoo classify models/hybrid digits.npy seven.png --binarize --out predictions.csv")
    classify.set_defaults(func=main)
    classify.add_argument("model", help="model folder or registered name")
    classify.add_argument("inputs", nargs="+", metavar="INPUT", help=".npy or .png files of images")
    classify.add_argument("--binarize", action="store_true", help="threshold the values at 0.5 first (a model of "
                          "binary data, such as a hybrid with a Helmholtz machine, takes only 0 and 1)")
    classify.add_argument("--out", metavar="FILE", help="CSV file to write (default: print)")
    return classify


def main(args, argv):
    prepare_tensorflow()
    import csv
    import io

    import numpy as np

    from zoo import capabilities, export, files, hub, viz

    model, card = export.load_folder(hub.resolve(args.model))
    capabilities.require(model, capabilities.Classifier, "classify")
    if not card.get("image_shape"):
        raise ValueError(f"{args.model}/card.json has no image_shape: cannot read the images")
    n_pixels = int(np.prod(card["image_shape"]))
    rows = []
    for path in args.inputs:
        x = viz.read_images(path, n_pixels)
        probabilities = model.predict_probabilities((x > 0.5).astype(np.float32) if args.binarize else x)
        classes = probabilities.argmax(axis=1)
        rows += [(path, i, c, f"{p[c]:.4f}") for i, (p, c) in enumerate(zip(probabilities, classes))]
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerows([("file", "index", "class", "probability"), *rows])
    if args.out:
        files.write_atomically(args.out, lambda tmp: Path(tmp).write_text(text.getvalue()))
        print(f"{len(rows)} images classified: {os.path.abspath(args.out)}")
    else:
        print(text.getvalue(), end="")
    return 0
