"""`make demo`: train a small RBM on binarised MNIST for a short while and show where everything went.

It runs the same code path as the command line,
    zoo train rbm --dataset binarized_mnist --n-hidden 200 --persistent --epochs 3 ...
then draws fresh samples with `zoo sample`. Outputs: demo_output/rbm (model folder with samples.png and
filters.png) and TensorBoard logs in tensorboard/demo-rbm.
"""
import shutil
import sys
import time
from pathlib import Path

from zoo import cli

ROOT = Path(__file__).resolve().parent.parent


def main():
    out, logdir = ROOT / "demo_output" / "rbm", ROOT / "tensorboard" / "demo-rbm"
    shutil.rmtree(logdir, ignore_errors=True)
    args = ["train", "rbm", "--dataset", "binarized_mnist", "--n-hidden", "200", "--persistent", "--cd-k", "1",
            "--epochs", "3", "--batch-size", "100", "--lr", "0.05", "--momentum", "0.5", "--seed", "0",
            "--out", str(out), "--logdir", str(logdir), "--overwrite", "--verbose", "2"]
    print("$ zoo " + " ".join(args), flush=True)
    start = time.time()
    if cli.main(args):
        return 1
    print(f"trained in {time.time() - start:.0f} s")
    png = ROOT / "demo_output" / "samples_1000_steps.png"
    sample_args = ["sample", str(out), "--n", "100", "--steps", "1000", "--seed", "1", "--out", str(png)]
    print("$ zoo " + " ".join(sample_args), flush=True)
    if cli.main(sample_args):
        return 1
    print("\nWhat the demo wrote:")
    print(f"  model folder     {out.relative_to(ROOT)}/ (model.keras, card.json)")
    print(f"  samples          {(out / 'samples.png').relative_to(ROOT)}, {png.relative_to(ROOT)}")
    print(f"  filters          {(out / 'filters.png').relative_to(ROOT)}")
    print(f"  TensorBoard logs {logdir.relative_to(ROOT)}/")
    print(f"\nWatch training in TensorBoard:\n  .venv/bin/tensorboard --logdir {logdir.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
