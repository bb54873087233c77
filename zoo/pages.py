"""Markdown and one-line summaries generated from model cards and registry entries: the registry's README table
(`registry_readme`), each checkpoint's page (`checkpoint_page`), the README's pretrained table (`pretrained_table`,
`update_readme`), and `describe_metrics` / `headline` for `zoo list` and the tables. Numbers in these come from
the cards, never typed. Imports nothing heavy."""
import math
from pathlib import Path

from zoo import files

def describe_metrics(metrics):
    """A card's metrics in one line: brackets as `test_nll [86.10, 86.52]`, numbers as `log_z 451.21`;
    anything else (settings) is left to the registry's JSON."""
    parts = []
    for key, value in (metrics.items() if isinstance(metrics, dict) else ()):
        if key == "seconds":  # how long the measurement took is not a property of the model
            continue
        if key == "test_nll_by_k" and isinstance(value, dict):  # importance sampling: each K, on how many examples
            parts += [f"test_nll K={k} {_format(float(v['nll']))}" + (
                f" ({v['n_examples']} examples)" if v.get("n_examples") and v["n_examples"] != max(
                    w.get("n_examples") or 0 for w in value.values()) else "")
                for k, v in value.items() if isinstance(v, dict) and _is_number(v.get("nll"))]
        if _is_number(value):
            parts.append(f"{key} {_format(value)}")
        elif key == "log_z" and isinstance(value, dict) and _is_number(value.get("log_z")):  # a BiHM's normaliser
            parts.append(f"log_z {_format(value['log_z'])} ± {_format(value.get('std', float('nan')))} "
                         f"({value.get('n_samples', '?'):,} samples of p)")
        elif key == "test_accuracy" and isinstance(value, dict) and _is_number(value.get("accuracy")):
            parts.append(f"test_accuracy {100 * value['accuracy']:.2f} %")
        elif key == "convergence" and isinstance(value, dict) and _is_number(value.get("drift")):
            verdict = "converged" if value.get("converged") else "not converged"
            parts.append(f"log Z {verdict}: drift {_format(value['drift'])} ± {_format(value.get('drift_std'))} "
                         f"({value.get('n_betas_short')} -> {value.get('n_betas_long')} temperatures)")
        elif isinstance(value, dict) and _is_number(value.get("lower")) and _is_number(value.get("upper")):
            exact = f" (exact {_format(value['exact'])})" if _is_number(value.get("exact")) else ""
            parts.append(f"{key} [{_format(value['lower'])}, {_format(value['upper'])}]{exact}")
    return "; ".join(parts)


def format_size(n):
    for unit in ("B", "kB", "MB"):
        if n < 1000:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"


def registry_readme(models, command):
    rows = ["| name | model | dataset | metrics | size | sha256 |", "|---|---|---|---|---|---|"]
    details = []
    for name, entry in models.items():
        s = entry["summary"]
        rows.append(f"| {name} | {s.get('model') or '-'} | {s.get('dataset') or '-'} | "
                    f"{describe_metrics(s.get('metrics')) or '-'} | {format_size(entry['size'])} | "
                    f"`{entry['sha256'][:12]}` |")
        details.append(f"- **{name}** (`{entry['file']}`): binarisation {s.get('binarization') or '-'}; seed "
                       f"{'-' if s.get('seed') is None else s['seed']}; trained by `{s.get('command') or '-'}`"
                       + (f"; {len(s['lineage'])} stages, see [its page](../docs/checkpoints/{name}.md)"
                          if s.get("lineage") else ""))
    return "\n".join([
        "# pretrained/", "",
        "The published checkpoints: `NAME.tar.gz` (a model folder's weights and files; re-packed only when the",
        "weights change), `cards/NAME.json` (its card: metrics with the commands that measured them, training",
        "command, notes; edit it freely) and `registry.json`, generated from both (sha256, size, URLs, the card).",
        "`zoo list` shows them, `zoo fetch NAME` unpacks one into the cache with its card, and `zoo.load(\"NAME\")`",
        "returns the Keras model. After editing a card: `python scripts/make_registry.py` (no archive changes).", "",
        *rows, "", *details, "",
        f"Generated from the cards by `{command}`: do not edit by hand.", ""])


README_START = "<!-- pretrained table: generated from pretrained/registry.json by python scripts/make_registry.py -->"
README_END = "<!-- end of the pretrained table -->"


def pretrained_table(models):
    """The README's table of the pretrained models, generated from registry entries {NAME: entry}: what each
    is (the card's `description`, `data_description`), its headline metric (from the card's metrics), its
    10-labels-per-class accuracy (the card's `few_shot`, or a hybrid's own test accuracy), its size; and a
    numbered note per model with the commands that trained and measured it."""
    rows = ["| name | what it is | data | headline metric | 10 labels per class | size |",
            "|---|---|---|---|---|---|"]
    notes = []
    for i, (name, entry) in enumerate(models.items(), 1):
        card = entry.get("card") or {}
        metrics = card.get("metrics") or {}
        rows.append(f"| `{name}` | {card.get('description') or card.get('model', '-')} | "
                    f"{card.get('data_description') or card.get('dataset', '-')} | {headline(metrics)} ({i}) | "
                    f"{_few_shot_cell(card)} | {format_size(entry['size'])} |")
        commands = _metric_commands(metrics)
        few = card.get("few_shot") or {}
        notes.append(f"{i}. Trained by `python scripts/train_pretrained.py {name}`; measured by "
                     + "; ".join(f"`{c}`" for c in commands) + (f" (on `{metrics['dataset']}`)" if metrics.get(
                         "dataset") else "") + (f"; few-shot: `{few['command']}`" if few.get("command") else "")
                     + f"; [its page](docs/checkpoints/{name}.md).")
    return "\n".join(rows + [""] + notes)


def headline(metrics):
    """A card's main number in words: the NLL bracket of an energy model, the importance-sampled NLL at the
    largest K, a BiHM's -log p*(x) with its log Z, a hybrid's test accuracy."""
    parts = []
    if isinstance(metrics.get("test_accuracy"), dict) and _is_number(metrics["test_accuracy"].get("accuracy")):
        parts.append(f"test accuracy {100 * metrics['test_accuracy']['accuracy']:.2f} %")
    check = metrics.get("convergence")
    if metrics.get("kind") == "not converged" and isinstance(check, dict) and _is_number(check.get("drift")):
        parts.append(f"log Z not converged (forward AIS moved {_format(check['drift'])} nats from "
                     f"{check.get('n_betas_short')} to {check.get('n_betas_long')} temperatures)")
    test = metrics.get("test_nll")
    if isinstance(test, dict) and _is_number(test.get("lower")) and _is_number(test.get("upper")):
        what = "test bound bracket" if metrics.get("kind") == "bound bracket" else "test NLL"
        exact = f", exact {_format(test['exact'])}" if _is_number(test.get("exact")) else ""
        parts.append(f"{what} [{_format(test['lower'])}, {_format(test['upper'])}] nats{exact}")
    by_k = {int(k): v for k, v in (metrics.get("test_nll_by_k") or {}).items() if isinstance(v, dict)
            and _is_number(v.get("nll"))}
    if by_k:
        k = max(by_k)
        what = "test -log p*(x)" if isinstance(metrics.get("log_z"), dict) else "test NLL"
        z = metrics.get("log_z") if isinstance(metrics.get("log_z"), dict) else {}
        log_z = f", log Z {_format(z['log_z'])}" if _is_number(z.get("log_z")) else ""
        parts.append(f"{what} {_format(float(by_k[k]['nll']))} nats at K = {k:,}{log_z}")
    return "; ".join(parts) or "-"


def _few_shot_cell(card):
    few = card.get("few_shot") or {}
    acc = few.get("accuracy") or {}
    if acc:
        cell = lambda key: f"{acc[key]['mean']:.2f} ± {acc[key]['std']:.2f} %"  # noqa: E731
        return (f"fine-tuned {cell('pretrained')}, random init {cell('random')}, frozen features "
                f"{cell('frozen')} ({few.get('seeds')} seeds)")
    accuracy = (card.get("metrics") or {}).get("test_accuracy")
    if isinstance(accuracy, dict) and _is_number(accuracy.get("accuracy")):
        return f"trained with them: {100 * accuracy['accuracy']:.2f} %"
    return "not measured"


def _metric_commands(metrics):
    """The commands that measured a card's metrics, each once, oldest first: a BiHM's log Z, each K's, the last."""
    by_k = metrics.get("test_nll_by_k") if isinstance(metrics.get("test_nll_by_k"), dict) else {}
    commands = [v.get("command") for v in by_k.values() if isinstance(v, dict)]
    if isinstance(metrics.get("log_z"), dict):
        commands.insert(0, metrics["log_z"].get("command"))
    return list(dict.fromkeys(c for c in commands + [metrics.get("command")] if c)) or ["-"]


def update_readme(path, models):
    """Replace the part of the README at `path` between README_START and README_END with `pretrained_table`."""
    path = Path(path)
    text = path.read_text()
    if README_START not in text or README_END not in text:
        raise ValueError(f"{path} has no pretrained table markers ({README_START} ... {README_END})")
    head, rest = text.split(README_START, 1)
    _, tail = rest.split(README_END, 1)
    new = f"{head}{README_START}\n{pretrained_table(models)}\n{README_END}{tail}"
    if new != text:
        files.write_atomically(path, lambda p: p.write_text(new))


def checkpoint_page(name, card, entry=None, command=None):
    """A checkpoint's Markdown page, generated from its card (and registry entry): what it is, what it
    measured with which command, its training stages, its recommended fine-tuning settings."""
    metrics = card.get("metrics") or {}
    lines = [f"# {name}", "", f"{card.get('model', '?')} trained on `{card.get('dataset', '?')}` "
             f"(binarisation: {card.get('binarization') or '-'}; seed {card.get('seed', '-')}).", ""]
    if entry:
        lines += [f"Archive `{entry['file']}`, {format_size(entry['size'])}, sha256 `{entry['sha256']}`: "
                  f"`zoo fetch {name}`, `zoo.load(\"{name}\")`.", ""]
    lines += ["## Measured", ""]
    if metrics:
        test = metrics.get("test_nll")
        kind = metrics.get("kind") or ("bracket: forward AIS (optimistic), RAISE (conservative)"
                                       if isinstance(test, dict) and "lower" in test else "see the card")
        lines += [f"{describe_metrics(metrics) or '-'} ({kind}; on `{metrics.get('dataset', '?')}`), by", "",
                  *(f"    {command}" for command in _metric_commands(metrics)), ""]
    else:
        lines += ["Nothing measured yet.", ""]
    lineage = card.get("lineage") or []
    if lineage:
        lines += ["## Training stages", "", "Each stage continues the one before it (`--init-from`); the result "
                  "is the test / train NLL bracket in nats measured on the stage's model.", "",
                  "| stage | epochs | minutes | test NLL | train NLL | ESS | what changed |",
                  "|---:|---:|---:|---|---|---:|---|"]
        for stage in lineage:
            result = stage.get("result") or {}
            lines.append(f"| {stage.get('stage', '?')} | {_cell(stage.get('epochs'))} | "
                         f"{_cell(stage.get('minutes'))} | "
                         f"{_bracket(result.get('test_nll'))} | {_bracket(result.get('train_nll'))} | "
                         f"{_cell(result.get('ess'))} | {stage.get('note') or '-'} |")
        lines += ["", "Commands, oldest first (`zoo train`, then the `zoo eval` that measured the stage):", ""]
        for stage in lineage:
            lines += [f"{stage.get('stage', '?')}. `{stage.get('command') or '-'}`"]
            if stage.get("eval_command"):
                lines += [f"   measured by `{stage['eval_command']}`"]
        lines.append("")
    else:
        lines += ["## Training", "", f"    {card.get('command') or '-'}", ""]
    if card.get("notes"):
        lines += ["## Notes", "", str(card["notes"]), ""]
    if card.get("finetune_defaults"):
        settings = ", ".join(f"{k} {v}" for k, v in sorted(card["finetune_defaults"].items()))
        lines += ["## Fine-tuning", "", f"`zoo finetune {name}` applies these settings unless a flag overrides them "
                  f"(chosen on the validation split): {settings}.", ""]
    if command:
        lines += [f"Generated from the card by `{command}`: do not edit by hand.", ""]
    return "\n".join(lines)


def _cell(x):
    return "-" if x is None else _format(x) if isinstance(x, float) else str(x)


def _bracket(pair):
    if isinstance(pair, (list, tuple)) and len(pair) == 2 and all(_is_number(v) for v in pair):
        return f"[{_format(float(pair[0]))}, {_format(float(pair[1]))}]"
    return "-"


def _is_number(x):
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _format(x):
    if isinstance(x, float) and (x == 0 or 0.01 <= abs(x) < 1e6):
        return f"{x:.2f}"
    return f"{x:.4g}" if isinstance(x, float) else str(x)
