"""Print the few-shot fine-tuning table of README.md and docs/finetuning.md (Markdown) with the exact command that produced it.

    python scripts/finetune_table.py rbm500-bmnist --labels-per-class 1 10 100 --seeds 5   # runs zoo finetune
    python scripts/finetune_table.py --json result.json     # reads `zoo finetune ... --json > result.json`

Any arguments but --json go to `zoo finetune` (which gets --json added). The numbers come from the run's
JSON only, so the table and the command under it cannot disagree. When the report says where each setting
came from (`settings_sources`, from `zoo.finetune.resolve_settings`), the settings the model card
recommended are named under the table.
"""
import contextlib
import io
import json
import shlex
import sys

from zoo import cli, finetune


# few_shot's recorded settings under another name than the setting's
RECORDED_AS = {"epochs": "max_epochs", "fixed_epochs": "fixed_epochs_without_validation"}


def card_settings(report):
    """'shift 2, l2 0.0001, ...': the settings of the run that came from the model card's finetune_defaults."""
    s = report["settings"]
    values = [(key, s.get(RECORDED_AS.get(key, key))) for key, source in report.get("settings_sources", {}).items()
              if source == "card"]
    return ", ".join(f"{key} {value:g}" if isinstance(value, float) else f"{key} {value}" for key, value in values)


def render(report):
    """The Markdown block for a `zoo finetune --json` report: a caption, the table, the command."""
    s = report["settings"]
    seeds = report["seeds"]
    fixed = s["fixed_epochs_without_validation"]
    args = [a for a in shlex.split(report["command"])[2:] if a != "--json"]  # drop "zoo finetune"
    split = s.get("evaluated_on", "test")  # reports before the option measured on the test split
    caption = (f"{split.capitalize()} accuracy (%) on all {s['n_test']:,} {split} images of `{s['dataset']}`"
               + (" (the validation split: the draws never touch it, and neither does this choice touch the "
                  "test split)" if split == "validation" else "") + ", mean ± std over "
               f"{len(seeds)} seed{'s' if len(seeds) > 1 else ''} (each seed draws its own class-balanced "
               f"labelled examples from the train split), {report['model_summary']} from `{report['model']}`. "
               f"{100 * s['validation_fraction']:g} % of each draw is held out for early stopping"
               + ("; then the net is trained again from the same start on the whole draw for the epochs chosen"
                  if s.get("refit") else "")
               + f"; with 1 label per class there is none and the nets train {fixed} epochs."
               + (f" The nets train on each labelled image and its copies shifted by up to {s['shift']} pixel"
                  f"{'s' if s['shift'] > 1 else ''} (the frozen row does not)." if s.get("shift") else "")
               + (" For 'all': the whole train split, early stopping on the dataset's validation split, no "
                  "refit." if "all" in report["labels_per_class"] else "")
               + " Gain: pretrained - random, paired by seed.")
    recommended = card_settings(report)
    return "\n".join([caption, "", finetune.markdown_table(report), "",
                      f"Produced by `{report['command']}` ({report['seconds']:.0f} s; {finetune.describe_settings(s)}"
                      + (f"; recommended by the model card: {recommended}" if recommended else "") + ").",
                      "", f"Regenerate with `python scripts/finetune_table.py {shlex.join(args)}`."])


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        if argv[:1] == ["--json"]:
            if len(argv) != 2:
                raise cli.UsageError("finetune_table.py: --json takes one file and nothing else")
            try:
                with open(argv[1]) as f:
                    report = json.load(f)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{argv[1]} is not the JSON of `zoo finetune --json`: {exc}") from None
        else:
            if not argv or argv[0].startswith("-"):
                raise cli.UsageError("finetune_table.py: give a model (and zoo finetune options) or --json FILE")
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                code = cli.main(["finetune", *argv, "--json"])
            if code:
                return code  # zoo finetune has reported the error
            report = json.loads(out.getvalue())
        missing = {"command", "settings", "accuracy", "gain", "labels_per_class", "seeds"} - set(report)
        if missing:
            raise ValueError(f"the report lacks {', '.join(sorted(missing))}: not from `zoo finetune --json`")
        print(render(report))
    except (ValueError, OSError) as exc:
        print(exc if isinstance(exc, cli.UsageError) else f"finetune_table.py: error: {exc}", file=sys.stderr)
        return cli.EXIT_BAD_INPUT
    return 0


if __name__ == "__main__":
    sys.exit(main())
