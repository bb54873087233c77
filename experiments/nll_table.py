"""Print a Markdown table of test NLL against the number of importance samples K for several latent-variable
models, side by side, from the numbers their cards record (`zoo eval FOLDER --k ... --write-card`): the table of
docs/bihm.md that measures the bidirectional Helmholtz machine's claim against reweighted wake-sleep.

    python experiments/nll_table.py models/bihm-12l-bmnist models/rws-12l-bmnist \\
        --logs models/bihm-12l-bmnist.log models/rws-12l-bmnist.log

Per model and K: the NLL with its standard error and the effective sample size of the importance weights; for a
BiHM also its p alone from the same samples. With --logs (the console logs of the training runs), the training
time of each (epochs x the median epoch, experiments/epoch_times.py). The commands that measured every number are
listed under the table; the numbers come from the cards only.
"""
import json
import statistics
import sys
from pathlib import Path

from epoch_times import epoch_seconds
from zoo import cli


def read_card(folder):
    """(name, metrics) of a model folder whose card has test NLLs by K; UsageError otherwise."""
    path = Path(folder) / "card.json"
    try:
        card = json.loads(path.read_text())
    except OSError as error:
        raise cli.UsageError(f"nll_table.py: cannot read {path}: {error.strerror}") from None
    except ValueError:
        raise cli.UsageError(f"nll_table.py: {path} is not JSON") from None
    metrics = card.get("metrics") if isinstance(card, dict) else None
    if not isinstance(metrics, dict) or not metrics.get("test_nll_by_k"):
        raise cli.UsageError(f"nll_table.py: {path} has no test NLL by K (measure it with zoo eval FOLDER --k ... "
                             "--write-card)")
    return card.get("name") or Path(folder).name, metrics


def _cell(value, std=None, digits=2):
    if value is None:
        return ""
    return f"{value:.{digits}f}" + ("" if std is None else f" ± {std:.{digits}f}")


def render(models, times=None):
    """The Markdown block: the table, log Z of each BiHM, training times (`times`: {name: (epochs, seconds)}),
    the commands. `models`: [(name, metrics)] in column order."""
    ks = sorted({int(k) for _, metrics in models for k in metrics["test_nll_by_k"]})
    header, rule = ["K"], ["---:"]
    for name, metrics in models:
        bihm = "log_z" in metrics
        header += [f"`{name}`" + (": -log p*(x)" if bihm else ""), "ESS"] + (["its p alone", "p's ESS"] if bihm else [])
        rule += ["---:"] * (4 if bihm else 2)
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(rule) + "|"]
    for k in ks:
        row = [f"{k:,}"]
        for _, metrics in models:
            r = metrics["test_nll_by_k"].get(str(k), {})
            row += [_cell(r.get("nll"), r.get("std")), _cell(r.get("ess"), digits=1)]
            if "log_z" in metrics:
                row += [_cell(r.get("p_nll"), r.get("p_std")), _cell(r.get("p_ess"), digits=1)]
        lines.append("| " + " | ".join(row) + " |")
    first, last = ks[0], ks[-1]
    gaps = []
    for name, metrics in models:
        by_k = metrics["test_nll_by_k"]
        if str(first) in by_k and str(last) in by_k and first != last:
            gaps.append(f"`{name}` {by_k[str(first)]['nll'] - by_k[str(last)]['nll']:.2f}")
    notes = []
    if gaps:
        notes.append(f"From K = {first:,} to {last:,} the NLL falls by: {'; '.join(gaps)} nats.")
    examples = sorted({r.get("n_examples") for _, m in models for r in m["test_nll_by_k"].values()} - {None})
    datasets = sorted({m.get("dataset", "?") for _, m in models})
    notes.append(f"Test split of {', '.join(datasets)} ({' or '.join(f'{n:,}' for n in examples)} images); ± is the "
                 "standard error over images (and, for -log p*(x), log Z's error added in quadrature); ESS of the "
                 "K weights, mean over images.")
    for name, metrics in models:
        z = metrics.get("log_z")
        if z:
            notes.append(f"`{name}`: log Z = {z['log_z']:.3f} ± {z['std']:.3f} from {z['n_samples']:,} samples of p "
                         f"({z['k']} of q each; ESS {z['ess']:,.0f}), by `{z.get('command', '?')}`.")
    for name, (epochs, seconds) in (times or {}).items():
        notes.append(f"`{name}` trained {epochs} epochs, {seconds / 60:.0f} minutes at the median epoch "
                     f"({seconds / epochs:.0f} s).")
    commands = sorted({r["command"] for _, m in models for r in m["test_nll_by_k"].values() if r.get("command")})
    notes.append("Measured by: " + "; ".join(f"`{c}`" for c in commands) + ".")
    return "\n".join(lines) + "\n\n" + "\n".join(notes) + "\n"


def main(argv=None):
    parser = cli.Parser(prog="nll_table.py", description="Test NLL against K of several models, from their cards.")
    parser.add_argument("folders", nargs="+", help="model folders measured by zoo eval --write-card")
    parser.add_argument("--logs", nargs="+", default=[], help="the console logs of their training, one per folder")
    try:
        args = parser.parse_args(argv)
        if args.logs and len(args.logs) != len(args.folders):
            raise cli.UsageError(f"nll_table.py: {len(args.logs)} logs for {len(args.folders)} folders: give one "
                                 "log per folder or none")
        models = [read_card(folder) for folder in args.folders]
        times = {}
        for (name, _), log in zip(models, args.logs):
            try:
                seconds = epoch_seconds(log)
            except OSError as error:
                raise cli.UsageError(f"nll_table.py: cannot read {log}: {error.strerror}") from None
            if not seconds:
                raise cli.UsageError(f"nll_table.py: {log} has no epoch lines (trained with --verbose 2?)")
            times[name] = (len(seconds), len(seconds) * statistics.median(seconds))
    except cli.UsageError as error:
        print(error, file=sys.stderr)
        return cli.EXIT_BAD_INPUT
    print(render(models, times), end="")
    print(f"\nThis table: `python experiments/nll_table.py {' '.join(sys.argv[1:] if argv is None else argv)}`")
    return 0


if __name__ == "__main__":
    sys.exit(main())
