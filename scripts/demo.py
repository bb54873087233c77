"""`make demo`: the zoo in a few minutes, through the same commands a user types.

1. `zoo fetch rbm500-bmnist`: the bundled pretrained RBM, sha256-checked, into the cache ($ZOO_HOME).
2. `zoo eval rbm500-bmnist` with a short AIS (1,000 temperatures): log Z from both sides and the test NLL
   bracket, printed next to the numbers of its card (measured with 14,501 temperatures).
3. `zoo sample rbm500-bmnist`: 100 samples after 1,000 Gibbs sweeps, as a PNG.
4. `zoo train rbm` of a small RBM for 3 epochs, with TensorBoard logs (scalars, filters, particles).
5. `zoo finetune rbm500-bmnist` with 10 labels per class (2 seeds, with the settings its card recommends: the
   protocol of the few-shot table in docs/finetuning.md): the pretrained classifier against the same network from
   random initialisation, on all 10,000 test images.
6. The Helmholtz machine `rws-sbn-bmnist`: fetched, its test NLL by importance sampling at K = 1, 10 and 100 on
   1,000 test images next to its card's, and 100 samples from p as a PNG.
7. The bidirectional Helmholtz machine `bihm-12l-bmnist`: fetched, -log p*(x) at K = 1, 10 and 100 on 500 test
   images with the log Z of its card, next to the card's, and inpainting of the bottom half of 5 test images by
   its exact chain (4 chains each) as a PNG.
8. The deep Boltzmann machine `dbm-500-1000-bmnist`: fetched, log Z both ways and its test bound bracket with a short
   AIS (1,000 temperatures) next to its card's, and 100 samples after 1,000 Gibbs sweeps in all layers as a PNG.
9. The deep hybrid model `hybrid-bmnist-100labels` (trained with 100 labels): fetched, its test accuracy and
   generative bound at K = 1, 10 and 100 on 1,000 test images next to its card's, `zoo classify` on five test
   images, and 100 samples of its generative part as a PNG.
10. The implicit-density hybrid `ali-hybrid-mnist-100labels` (a GAN whose discriminator classifies; 100 labels):
   fetched, its test accuracy on 1,000 test images next to its card's (it has no likelihood: `zoo eval` says so),
   `zoo classify` on the same five test images, and 100 samples of its generator as a PNG.
Outputs go to demo_output/ and tensorboard/demo-*/.
"""
import contextlib
import io
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from zoo import cli

ROOT = Path(__file__).resolve().parent.parent
MODEL = "rbm500-bmnist"


def run(args, capture=False):
    print("$ zoo " + " ".join(args), flush=True)
    out = io.StringIO()
    with contextlib.redirect_stdout(out) if capture else contextlib.nullcontext():
        code = cli.main(args)
    if code:
        raise SystemExit(code)
    return out.getvalue()


def compare(card, report):
    """The card's metrics (long AIS) beside the ones just measured (short AIS)."""
    metrics = card.get("metrics", {})
    bound = report.get("bound")  # a DBM's: its mean-field bound, reverse AIS from test images
    nll, reverse = ("test bound", "reverse AIS") if bound else ("test NLL", "RAISE")
    rows = [("log Z, forward AIS", metrics.get("log_z", {}).get("forward"), report["log_z_forward"]),
            (f"log Z, {reverse}", metrics.get("log_z", {}).get("reverse"), report["log_z_reverse"]),
            (f"{nll}, lower", metrics.get("test_nll", {}).get("lower"), report["nll"]["test"]["lower"]),
            (f"{nll}, upper", metrics.get("test_nll", {}).get("upper"), report["nll"]["test"]["upper"])]
    card_betas = metrics.get("settings", {}).get("forward", {}).get("n_betas", "?")
    print(f"\n{'':<24}{f'card ({card_betas} betas)':>22}{'just now (1000 betas)':>24}")
    for name, then, now in rows:
        print(f"{name:<24}{'-' if then is None else f'{then:.2f}':>22}{now:>24.2f}")
    print(f"With 1,000 temperatures both estimates are noisier and, on average, further apart (forward AIS too "
          f"low, {reverse} too high); the card's long run is the reference.")
    check = report.get("convergence")
    if check:
        verdict = "converged" if check["converged"] else "not converged: the pair just now is no bracket"
        print(f"The quick run's convergence check: forward log Z moved {check['drift']:.2f} +- {check['drift_std']:.2f} "
              f"from {check['n_betas_short']} to {check['n_betas_long']} temperatures ({verdict}).")


def compare_by_k(name, n_examples, extra=()):
    """Fetch a latent-variable model and print its test NLL at K = 1, 10, 100 on the first `n_examples` test
    images beside its card's (all 10,000)."""
    from zoo import hub

    print(run(["fetch", name], capture=True).strip())
    report = json.loads(run(["eval", name, "--k", "1", "10", "100", "--test-examples", str(n_examples), "--seed", "0",
                             *extra, "--json"], capture=True))
    metrics = json.loads((hub.resolve(name) / "card.json").read_text()).get("metrics", {})
    card = metrics.get("test_nll_by_k", {})
    print(f"\n{name + ': test NLL':<34}{'card (10,000 images)':>22}{f'just now ({n_examples:,})':>18}")
    for r in report["results"]:
        then = card.get(str(r["k"]), {}).get("nll")
        print(f"{'K = ' + str(r['k']):<34}{'-' if then is None else f'{then:.2f}':>22}{r['nll']:>18.2f}")
    if "accuracy" in report:  # a hybrid also classifies
        then = metrics.get("test_accuracy", {}).get("accuracy")
        print(f"{'test accuracy (%)':<34}{'-' if then is None else f'{100 * then:.2f}':>22}"
              f"{100 * report['accuracy']:>18.2f}")


def main():
    from zoo import hub

    out_dir, logdir = ROOT / "demo_output", ROOT / "tensorboard" / "demo-rbm"
    out_dir.mkdir(exist_ok=True)
    shutil.rmtree(logdir, ignore_errors=True)
    start = time.time()

    print(run(["fetch", MODEL], capture=True).strip())
    report = json.loads(run(["eval", MODEL, "--ais-betas", "1000", "--ais-chains", "100", "--reverse-examples",
                             "100", "--seed", "0", "--json"], capture=True))
    compare(json.loads((hub.resolve(MODEL) / "card.json").read_text()), report)

    samples = out_dir / f"{MODEL}-samples.png"
    run(["sample", MODEL, "--n", "100", "--steps", "1000", "--seed", "1", "--out", str(samples)])

    small = out_dir / "rbm"
    run(["train", "rbm", "--dataset", "binarized_mnist", "--n-hidden", "200", "--persistent", "--epochs", "3",
         "--batch-size", "100", "--lr", "0.05", "--momentum", "0.5", "--seed", "0", "--out", str(small),
         "--logdir", str(logdir), "--overwrite", "--verbose", "2"])

    finetune_logs = ROOT / "tensorboard" / "demo-finetune"
    shutil.rmtree(finetune_logs, ignore_errors=True)
    result = json.loads(run(["finetune", MODEL, "--labels-per-class", "10", "--seeds", "2", "--json", "--logdir",
                             str(finetune_logs)], capture=True))
    print("\n10 labels per class (100 labelled images), test accuracy on 10,000 images, mean of 2 seeds:")
    for row in ("pretrained", "random"):
        print(f"  {row:<11} {100 * result['accuracy'][row]['10']['mean']:.2f} %")

    helmholtz, helmholtz_samples = "rws-sbn-bmnist", out_dir / "rws-sbn-bmnist-samples.png"
    compare_by_k(helmholtz, 1000)
    run(["sample", helmholtz, "--n", "100", "--seed", "1", "--out", str(helmholtz_samples)])

    bihm, inpainting = "bihm-12l-bmnist", out_dir / "bihm-12l-bmnist-inpainting.png"
    compare_by_k(bihm, 500, ["--z-from-card"])
    run(["inpaint", bihm, "--mask", "bottom", "--n", "5", "--chains", "4", "--steps", "50", "--seed", "0", "--out",
         str(inpainting)])

    dbm, dbm_samples = "dbm-500-1000-bmnist", out_dir / "dbm-500-1000-bmnist-samples.png"
    print(run(["fetch", dbm], capture=True).strip())
    report = json.loads(run(["eval", dbm, "--ais-betas", "1000", "--ais-chains", "100", "--reverse-examples", "100",
                             "--burn-in", "100", "--seed", "0", "--json"], capture=True))
    compare(json.loads((hub.resolve(dbm) / "card.json").read_text()), report)
    run(["sample", dbm, "--n", "100", "--steps", "1000", "--seed", "1", "--out", str(dbm_samples)])

    hybrid, hybrid_samples = "hybrid-bmnist-100labels", out_dir / "hybrid-bmnist-100labels-samples.png"
    compare_by_k(hybrid, 1000)
    from zoo import data

    digits = out_dir / "five-test-digits.npy"
    test = data.load("binarized_mnist").test
    np.save(digits, test.x[:5])
    print(run(["classify", hybrid, str(digits)], capture=True), end="")
    print(f"(their labels: {' '.join(str(int(c)) for c in test.y[:5])})")
    run(["sample", hybrid, "--n", "100", "--seed", "1", "--out", str(hybrid_samples)])

    implicit, implicit_samples = "ali-hybrid-mnist-100labels", out_dir / "ali-hybrid-mnist-100labels-samples.png"
    print(run(["fetch", implicit], capture=True).strip())
    report = json.loads(run(["eval", implicit, "--test-examples", "1000", "--json"], capture=True))
    then = json.loads((hub.resolve(implicit) / "card.json").read_text())["metrics"]["test_accuracy"]
    card_n, card_accuracy, now = then["n_examples"], 100 * then["accuracy"], 100 * report["accuracy"]
    print(f"\n{implicit + ': test accuracy':<44}{f'card ({card_n:,} images)':>22}{'just now (1,000)':>18}")
    print(f"{'':<44}{f'{card_accuracy:.2f} %':>22}{f'{now:.2f} %':>18}\n{report['note']}")
    grey = out_dir / "five-grey-test-digits.npy"  # it was trained on grey images: the same five, not binarised
    np.save(grey, data.load("mnist").test.x[:5])
    print(run(["classify", implicit, str(grey)], capture=True), end="")
    print(f"(their labels: {' '.join(str(int(c)) for c in test.y[:5])})")
    run(["sample", implicit, "--n", "100", "--seed", "1", "--out", str(implicit_samples)])

    print(f"\nDone in {time.time() - start:.0f} s. What the demo wrote:")
    print(f"  pretrained model   {hub.resolve(MODEL)}/ (model.keras, saved_model/, card.json)")
    print(f"  its samples        {samples.relative_to(ROOT)}; the Helmholtz machine's: "
          f"{helmholtz_samples.relative_to(ROOT)}; the DBM's: {dbm_samples.relative_to(ROOT)}; the hybrid's: "
          f"{hybrid_samples.relative_to(ROOT)}; the implicit hybrid's: {implicit_samples.relative_to(ROOT)} (its "
          f"reconstructions G(E(x)): {hub.resolve(implicit)}/reconstructions.png)")
    print(f"  inpainting         {inpainting.relative_to(ROOT)} (each row: the image, its known half, 4 chains)")
    print(f"  a small RBM        {small.relative_to(ROOT)}/ (model.keras, saved_model/, card.json, samples.png, "
          "filters.png)")
    print(f"  TensorBoard logs   {logdir.relative_to(ROOT)}/ and {finetune_logs.relative_to(ROOT)}/")
    print(f"\nWatch training in TensorBoard:\n  .venv/bin/tensorboard --logdir {logdir.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
