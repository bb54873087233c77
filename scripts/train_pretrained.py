"""The recipes of the pretrained checkpoints: each is one or more `zoo train` commands (stages, each
continuing the one before with --init-from; each resumable: interrupt it and run the same line again)
followed by `zoo eval --write-card` (one or more), which measures the model with forward AIS
and RAISE and records the numbers, their settings and the eval command in the model's card.json.

    .venv/bin/python scripts/train_pretrained.py rbm500-bmnist      # trains models/rbm500-bmnist
    .venv/bin/python scripts/train_pretrained.py rbm1024-bmnist     # tried, not bundled (see --list)
    .venv/bin/python scripts/train_pretrained.py grbm-digits
    .venv/bin/python scripts/train_pretrained.py --list

Then publish each (a lean copy, without optimizer slots and persistent chains, with the card fields of
scripts/cards/NAME.json: the staged lineage, the recommended fine-tuning settings) and bundle them:

    .venv/bin/python scripts/publish_checkpoint.py models/rbm500-bmnist --name rbm500-bmnist \
        --out models/published --card-fields scripts/cards/rbm500-bmnist.json
    .venv/bin/python scripts/publish_checkpoint.py models/grbm-digits --name grbm-digits \
        --out models/published --card-fields scripts/cards/grbm-digits.json
    .venv/bin/python scripts/make_registry.py models/published/rbm500-bmnist models/published/grbm-digits

An existing model folder is not retrained (only measured again) unless --retrain is given.
"""
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent



def _tempering_stage(epochs, lr, momentum, seed):
    """A stage of rbm500-bmnist from stage 3 on: the stage before continued by parallel tempering (20 inverse
    temperatures from 0.5, 100 chains each), the learning rate falling linearly from `lr` to 0.0001."""
    return ["--init-from", "{previous}", "--dataset", "mnist", "--dynamic-binarization", "--n-hidden", "500",
            "--persistent", "--n-chains", "100", "--temperatures", "20", "--min-beta", "0.5", "--cd-k", "1",
            "--epochs", str(epochs), "--batch-size", "100", "--lr", str(lr), "--lr-final", "0.0001",
            "--momentum", str(momentum), "--l2", "0.0001", "--seed", str(seed), "--log-every", "20",
            "--verbose", "2"]


#: the 12 layers of Bornschein et al. (2016), trained on dynamically binarised MNIST: bihm-12l-bmnist and its
#: reweighted wake-sleep counterpart
TWELVE_LAYERS = ["--dataset", "mnist", "--dynamic-binarization", "--layers", "300", "200", "100", "75", "50", "35",
                 "30", "25", "20", "15", "10", "10", "--k", "10", "--epochs", "300", "--batch-size", "100", "--lr",
                 "0.001", "--lr-final", "0.0003", "--seed", "0", "--log-every", "10", "--verbose", "2"]

RECIPES = {
    "rbm500-bmnist": {
        "about": "Bernoulli RBM 784-500, persistent CD on MNIST with dynamic binarisation (a fresh Bernoulli "
                 "sample of the grey images every epoch), measured on binarized_mnist (the fixed sample of "
                 "zoo.data). Stage 1: the Gibbs steps per update rise linearly from 1 to 25 over 400 epochs "
                 "(124 minutes here, 2 cores; test NLL bracket [92.5, 93.4]). Stage 2 continues it (--init-from) "
                 "for 80 epochs at k = 25 with the learning rate 0.002 -> 0.0002 (35 minutes; [91.3, 92.4]). "
                 "Stage 3 continues that for 160 epochs of parallel tempering (20 inverse temperatures from 0.5 "
                 "to 1, 100 chains each, one sweep and one round of swaps per update) with the learning rate "
                 "0.001 -> 0.0001 (70 minutes; [91.1, 92.0]); the same epochs of PCD-25 instead gave [91.8, 92.3]. "
                 "Stage 4 continues that for 120 epochs of the same tempering with momentum 0.9 instead of 0.5 "
                 "(five times the step; 52 minutes; [91.0, 91.5]). Stage 5 continues that for 120 epochs with the "
                 "learning rate 0.002 -> 0.0001 (twice stage 4's step; 50 minutes; [88.9, 89.3]). Stage 6 "
                 "continues that for 200 epochs with the learning rate 0.004 -> 0.0001 (twice again; 57 minutes; "
                 "[87.6, 88.2]). Stage 7 continues that for 60 epochs with the learning rate 0.002 -> 0.0001 "
                 "(17 minutes; [87.2, 88.0]). "
                 "The stage-1 schedule over 200 epochs measured [93.6, 94.5]; PCD-1 for 100 epochs 102 nats, "
                 "fast-weights PCD-1 for 400 epochs 101.3; a 300-epoch PCD-1 run on the fixed sample 109.",
        "stages": [
            ["--dataset", "mnist", "--dynamic-binarization", "--n-hidden", "500", "--persistent", "--n-chains", "100",
             "--cd-k", "1", "--cd-k-final", "25", "--epochs", "400", "--batch-size", "100", "--lr", "0.05",
             "--lr-final", "0.001", "--momentum", "0.5", "--l2", "0.0001", "--seed", "0", "--log-every", "20",
             "--log-z-every", "40", "--verbose", "2"],
            ["--init-from", "{previous}", "--dataset", "mnist", "--dynamic-binarization", "--n-hidden", "500",
             "--persistent", "--n-chains", "100", "--cd-k", "25", "--epochs", "80", "--batch-size", "100", "--lr",
             "0.002", "--lr-final", "0.0002", "--momentum", "0.5", "--l2", "0.0001", "--seed", "1", "--log-every",
             "20", "--verbose", "2"],
            _tempering_stage(epochs=160, lr=0.001, momentum=0.5, seed=2),
            _tempering_stage(epochs=120, lr=0.001, momentum=0.9, seed=4),
            _tempering_stage(epochs=120, lr=0.002, momentum=0.9, seed=5),
            _tempering_stage(epochs=200, lr=0.004, momentum=0.9, seed=6),
            _tempering_stage(epochs=60, lr=0.002, momentum=0.9, seed=8),
        ],
        "eval": ["--ais-betas", "14501", "--ais-chains", "100", "--reverse-betas", "14501",
                 "--reverse-examples", "500", "--seed", "0"],
    },
    "rbm1024-bmnist": {
        "about": "Bernoulli RBM 784-1024, tried as a wider classifier initialisation (zoo finetune) and NOT "
                 "bundled: CD-1 on MNIST with dynamic binarisation, batch 20, lr 0.05 -> 0.001, momentum 0.5, L2 "
                 "1e-5, sparsity target 0.1 (cost 1e-5), 100 epochs (22 minutes here), after the reference "
                 "project's RBM-1024 recipe (batch 10, 120 epochs). Test NLL bracket [158.7, 189.4]; as an "
                 "initialisation it does worse than rbm500-bmnist on MNIST's validation split (docs/finetuning.md).",
        "train": ["--dataset", "mnist", "--dynamic-binarization", "--n-hidden", "1024", "--cd-k", "1", "--epochs",
                  "100", "--batch-size", "20", "--lr", "0.05", "--lr-final", "0.001", "--momentum", "0.5", "--l2",
                  "0.00001", "--sparsity-target", "0.1", "--sparsity-cost", "0.00001", "--seed", "0",
                  "--log-every", "20", "--verbose", "2"],
        "eval": ["--ais-betas", "5001", "--ais-chains", "100", "--reverse-betas", "5001",
                 "--reverse-examples", "200", "--seed", "0"],
    },
    "grbm-digits": {
        "about": "Gaussian-Bernoulli RBM 64-16, fixed sigma 0.2, on scikit-learn's 8x8 digits (grey values in "
                 "[0, 1]); small enough for exact log Z (2^16 hidden states). A learned-sigma trial (start 0.3, "
                 "lr 0.01) ended with a test NLL of 108.8 against about 0 with sigma fixed, so it is fixed.",
        "train": ["--dataset", "digits", "--visible", "gaussian", "--sigma", "0.2", "--n-hidden", "16",
                  "--persistent", "--n-chains", "100", "--epochs", "200", "--batch-size", "20", "--lr", "0.003",
                  "--momentum", "0.5", "--seed", "0", "--log-every", "50", "--verbose", "0"],
        "eval": ["--ais-betas", "14501", "--ais-chains", "100", "--reverse-examples", "300", "--exact",
                 "--seed", "0"],
    },
    "rws-sbn-bmnist": {
        "family": "helmholtz",
        "about": "Helmholtz machine 784-200-200-10, SBN p and q, trained by reweighted wake-sleep (K = 10, wake and "
                 "sleep q updates, Adam lr 0.001 -> 0.0003, batch 100) on MNIST with dynamic binarisation for 150 "
                 "epochs, measured on binarized_mnist by importance sampling at K = 1 ... 1000 on the test split "
                 "(docs/helmholtz.md).",
        "train": ["--dataset", "mnist", "--dynamic-binarization", "--layers", "200", "200", "10", "--p-layers",
                  "sbn", "--q-layers", "sbn", "--k", "10", "--q-update", "both", "--epochs", "150", "--batch-size",
                  "100", "--lr", "0.001", "--lr-final", "0.0003", "--seed", "0", "--log-every", "10", "--verbose", "2"],
        "eval": ["--k", "1", "10", "100", "1000", "--seed", "0"],
    },
    "rws-darn-bmnist": {
        "family": "helmholtz",
        "about": "Helmholtz machine 784-200-200-10 with autoregressive (DARN) p layers and SBN q layers, trained "
                 "by reweighted wake-sleep (K = 10, the wake q update only: a DARN p dreams pixel after pixel, "
                 "784 sequential steps a dream; Adam lr 0.001 -> 0.0003, "
                 "batch 100) on MNIST with dynamic binarisation for 150 epochs, measured on binarized_mnist by "
                 "importance sampling at K = 1 ... 1000 on the test split (docs/helmholtz.md). SBN q layers keep "
                 "sampling from q parallel, so training and K = 10^4 evaluation stay fast.",
        "train": ["--dataset", "mnist", "--dynamic-binarization", "--layers", "200", "200", "10", "--p-layers",
                  "darn", "--q-layers", "sbn", "--k", "10", "--q-update", "wake", "--epochs", "150", "--batch-size",
                  "100", "--lr", "0.001", "--lr-final", "0.0003", "--seed", "0", "--log-every", "10", "--verbose", "2"],
        "eval": ["--k", "1", "10", "100", "1000", "--seed", "0"],
    },
    "bihm-12l-bmnist": {
        "family": "bihm",
        "about": "Bidirectional Helmholtz machine with the paper's 12 layers, 784-300-200-100-75-50-35-30-25-20-15-"
                 "10-10, SBN p and q, trained on log p~*(x) with K = 10 samples of q (Adam lr 0.001 -> 0.0003, "
                 "batch 100) on MNIST with dynamic binarisation for 300 epochs, measured on binarized_mnist: log Z "
                 "from 10^6 samples of p (10 of q each), then log p*(x) at K = 1 ... 10^4 on the test split "
                 "(docs/bihm.md).",
        "train": TWELVE_LAYERS,
        # K = 10^4 on its own, with the first command's log Z: one more hour, its number added to the card
        "eval": [["--k", "1", "10", "100", "1000", "--seed", "0"], ["--k", "10000", "--seed", "0", "--z-from-card"]],
    },
    "dbm-500-1000-bmnist": {
        "family": "dbm",
        "about": "Deep Boltzmann machine 784-500-1000 (Salakhutdinov & Hinton 2009) on MNIST with dynamic "
                 "binarisation: greedy pretraining of two modified RBMs (784-500 with doubled bottom-up input, 100 "
                 "epochs of CD-1; 500-1000 with doubled top-down input, 200 epochs of CD-k with k rising from 1 to "
                 "10; SGD lr 0.05 -> 0.005, momentum 0.5, weight cost 0.001, sampled reconstructions), assembled "
                 "with the middle layer's biases the mean of both RBMs' (the MATLAB code's halves), then 300 "
                 "epochs of joint training as the paper "
                 "(mean-field 10 rounds, 100 persistent chains, 5 Gibbs sweeps an update, lr 0.001 -> 0.0001, "
                 "momentum 0.9, weight cost 0.0002, sparsity targets 0.2 / 0.1 with cost 0.001; log Z and the "
                 "validation bound by a cheap AIS every 20 epochs), measured on "
                 "binarized_mnist: log Z by AIS both ways, the test mean-field bound (docs/dbm.md).",
        "train": ["--dataset", "mnist", "--dynamic-binarization", "--layers", "500", "1000", "--pretrain-epochs", "100",
                  "200", "--pretrain-lr", "0.05", "--pretrain-lr-final", "0.005", "--pretrain-momentum", "0.5",
                  "--pretrain-negative-visible", "sample", "--pretrain-l2", "0.001", "--pretrain-cd-k-final", "10",
                  "--epochs", "300", "--batch-size", "100",
                  "--n-chains", "100", "--gibbs-steps", "5", "--mean-field-steps", "10", "--lr", "0.001",
                  "--lr-final", "0.0001", "--momentum", "0.9", "--l2", "0.0002", "--sparsity-targets", "0.2", "0.1",
                  "--sparsity-cost", "0.001", "--seed", "0", "--log-every", "10", "--log-z-every", "20",
                  "--verbose", "2"],
        # forward AIS at 100,000 temperatures and at a fifth of them (the drift), reverse AIS from 20,000 sweeps
        "eval": ["--ais-betas", "100000", "--ais-chains", "100", "--reverse-examples", "100", "--burn-in", "20000",
                 "--seed", "0"],
    },
    "hybrid-bmnist-100labels": {
        "family": "hybrid",
        "about": "Deep hybrid model (Kuleshov & Ermon 2017) trained on 100 labelled MNIST images (10 per class, "
                 "the fine-tuning protocol's draw with seed 0: 8 train, 2 validation a class) and all 50,000 "
                 "images unlabelled: an auxiliary deep generative model (z and a of 32 dimensions, networks "
                 "500-500, Gaussian latents) and a CNN (5x5 convolutions of 32 and 64 channels with max-pooling, "
                 "then 500 ReLU units with dropout 0.5) on the pixels and the ADGM's features, on 1 * log p(y | x) "
                 "+ 0.1 * the ELBO, the best hybrid of docs/hybrid.md at 10 labels per class; Adam lr 0.001 -> "
                 "0.00001, batches of 100 half labelled, dynamic binarisation, 20 epochs; measured on all 10,000 "
                 "test images of binarized_mnist: the accuracy and the bound at K = 1, 10, 100.",
        "train": ["--dataset", "mnist", "--dynamic-binarization", "--generative", "adgm", "--classifier", "cnn",
                  "--dropout", "0.5", "--labels-per-class", "10", "--label-seed", "0", "--sup-weight", "1",
                  "--unsup-weight", "0.1", "--epochs", "20", "--lr", "0.001", "--lr-final", "0.00001", "--seed",
                  "0", "--log-every", "10", "--verbose", "2"],
        "eval": ["--k", "1", "10", "100", "--seed", "0"],
    },
    "ali-hybrid-mnist-100labels": {
        "family": "implicit-hybrid",
        "about": "Implicit-density deep hybrid (Kuleshov & Ermon 2017) trained on 100 labelled MNIST images (10 per "
                 "class, the fine-tuning protocol's draw with seed 0: 8 train, 2 validation a class) and all 50,000 "
                 "grey images unlabelled: ALI (G 100-500-500-784 with batch norm, E 784-500-500-100) whose joint "
                 "discriminator D(x, z) (x branch 1000-500-250-250-250 with Gaussian noise 0.3 / 0.5, z branch "
                 "500-250 with dropout) is the classifier, with a Pi-model consistency term (weight 100 ramped over "
                 "30 epochs, two passes with random translations of up to 2 pixels); Adam 0.003 (beta_1 0.5) for "
                 "each player, decaying to 0 over the last third; batches of 80 labelled + 120 unlabelled, 150 "
                 "epochs; the weights' average (decay 0.999) classifies; measured on all 10,000 test images.",
        "train": ["--dataset", "mnist", "--labels-per-class", "10", "--label-seed", "0", "--consistency-weight",
                  "100", "--consistency-ramp-epochs", "30", "--translate", "2", "--epochs", "150", "--lr", "0.003",
                  "--batch-size", "200", "--seed", "0", "--log-every", "10", "--verbose", "2"],
        "eval": ["--seed", "0"],
    },
    "rws-12l-bmnist": {
        "family": "helmholtz",
        "about": "Not bundled: the BiHM's claim measured (docs/bihm.md). bihm-12l-bmnist's architecture and "
                 "training settings, trained instead by reweighted wake-sleep (wake and sleep q updates) for the same "
                 "epochs; `python experiments/nll_table.py models/bihm-12l-bmnist models/rws-12l-bmnist` sets them "
                 "side by side.",
        "train": [*TWELVE_LAYERS, "--q-update", "both"],
        "eval": ["--k", "1", "10", "100", "1000", "10000", "--seed", "0"],
    },
}


def family(name):
    """The `zoo train` family of a recipe (rbm unless it says otherwise)."""
    return RECIPES[name].get("family", "rbm")


def evaluations(name):
    """The `zoo eval` arguments of a recipe, one list per command (`eval`: one command or a list of them, each
    adding its numbers to the card)."""
    evaluate = RECIPES[name]["eval"]
    return evaluate if isinstance(evaluate[0], list) else [evaluate]


def _shown(path):
    """`path` relative to the working directory when it lies below it, so the command a card records runs
    from any clone."""
    relative = os.path.relpath(path)
    return relative if not relative.startswith("..") else str(path)


def _stages(name, models_dir):
    """[(folder, zoo train arguments)] of a recipe: one stage (`train`), or several (`stages`), each
    stage but the last written to `<name>-stage<i>` and continued by the next one (`{previous}`)."""
    stages = RECIPES[name].get("stages") or [RECIPES[name]["train"]]
    folders = [models_dir / f"{name}-stage{i + 1}" for i in range(len(stages) - 1)] + [models_dir / name]
    return [(folder, [_shown(folders[i - 1]) if a == "{previous}" else a for a in stage])
            for i, (folder, stage) in enumerate(zip(folders, stages))]


def main(argv=None):
    from zoo.cli import args as cli_args

    parser = cli_args.Parser(prog="train_pretrained.py", description="Train and measure a pretrained checkpoint "
                             "of the zoo.")
    parser.add_argument("name", nargs="?", choices=sorted(RECIPES), help="which checkpoint")
    parser.add_argument("--list", action="store_true", help="list the recipes and their commands")
    parser.add_argument("--retrain", action="store_true", help="train again even if the folder exists")
    parser.add_argument("--models-dir", default=str(ROOT / "models"), help="where model folders go")
    try:
        args = parser.parse_args(argv)
    except cli_args.UsageError as exc:  # one line, exit 2
        print(exc, file=sys.stderr)
        return cli_args.EXIT_BAD_INPUT
    if args.list or args.name is None:
        for name in RECIPES:
            print(f"{name}: {RECIPES[name]['about']}")
            for folder, train in _stages(name, Path("models")):
                print(f"  zoo train {family(name)} {' '.join(train)} --out {folder}")
            for evaluate in evaluations(name):
                print(f"  zoo eval models/{name} {' '.join(evaluate)} --write-card")
        return 0

    from zoo import cli

    out = Path(args.models_dir) / args.name
    for folder, train in _stages(args.name, Path(args.models_dir)):
        if args.retrain or not folder.exists():
            command = ["train", family(args.name), *train, "--out", _shown(folder), "--logdir",
                       _shown(ROOT / "tensorboard" / folder.name)] + (["--overwrite"] if args.retrain else [])
            print("$ zoo " + " ".join(command), flush=True)
            if cli.main(command):
                return 1
    for evaluate in evaluations(args.name):
        command = ["eval", _shown(out), *evaluate, "--write-card"]
        print("$ zoo " + " ".join(command), flush=True)
        if cli.main(command):
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
