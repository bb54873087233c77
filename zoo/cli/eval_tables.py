"""What `zoo eval` prints without --json: its reports as aligned text, in nats, and the AIS progress line."""


class Progress:
    """Annealing steps done, on one rewritten stderr line per AIS run (evaluate runs the convergence check's
    shorter forward run unless check=False, forward, then reverse)."""

    def __init__(self, stream, check=True):
        self.stream, self.finished = stream, True
        self.phases = iter((("forward AIS (convergence check)",) if check else ()) +
                           ("forward AIS", "reverse AIS (RAISE)"))

    def __call__(self, done, total):
        if self.finished:  # a run ends at done == total: the next call starts the next run
            self.phase = next(self.phases, "AIS")
        self.finished = done == total
        print(f"\r{self.phase}: {done}/{total} steps", end="\n" if done == total else "",
              file=self.stream, flush=True)


def number(x, width=12, digits=4):
    """A number of a JSON report right-aligned: "-" for None (not computed), an infinite bound ("inf",
    "-inf": a single chain or example) as it is."""
    text = "-" if x is None else x if isinstance(x, str) else f"{x:.{digits}f}"
    return f"{text:>{width}}"


def convergence_verdict(check):
    """The check's verdict in words, and when it failed, which of its two conditions (a `Convergence` as a dict):
    a drift beyond 3 se asks for a longer schedule, an error bar wider than the tolerance for more chains."""
    bar, tolerance = 3 * check["drift_std"], check["tolerance"]
    if check["converged"]:
        return f"converged (the drift within 3 se, 3 se within {tolerance:g} nats)"
    reason = (f"the drift exceeds 3 se ({bar:.2f} nats): a longer schedule" if not abs(check["drift"]) <= bar else
              f"3 se ({bar:.2f} nats) exceed {tolerance:g} nats: more chains or a longer check")
    return f"NOT CONVERGED ({reason}): the NLL pair below is no bracket"


def energy_table(r):
    """The report of `zoo eval` for an energy model; its numbers come in JSON form (`to_dict`)."""
    fwd, rev, nll = r["forward"], r["reverse"], r["nll"]
    s = fwd["settings"]
    bound = r.get("bound")  # a DBM's: the NLL's mean-field bound, reverse chains from the data
    check = r.get("convergence")
    if check is None:
        convergence = [f"{'convergence':<22}not checked (--check-betas 0)"]
    else:
        verdict = convergence_verdict(check)
        convergence = [f"{'forward AIS, shorter':<22}{number(check['log_z_short'])}   {check['n_betas_short']} betas, "
                       f"ESS {check['ess_short']:.1f}",
                       f"{'drift':<22}{number(check['drift'])}   +- {number(check['drift_std'], 0)} (se); {verdict}"]
    if rev.get("log_likelihood") is None:
        reverse = (f"{'reverse AIS':<22}{number(r['log_z_reverse'])}   from {rev['settings']['n_examples']} chains "
                   f"started at test examples, {rev['settings'].get('burn_in')} sweeps before annealing")
    else:
        reverse = (f"{'reverse (RAISE)':<22}{number(r['log_z_reverse'])}   implied by "
                   f"{rev['settings']['n_examples']} test examples: mean log p >= {number(rev['log_likelihood'], 0)} "
                   f"+- {number(rev['log_likelihood_std'], 0)}")
    lines = [
        f"model    {r['model']} ({r['model_summary']})",
        f"dataset  {r['dataset']} ({r['n_train']} train, {r['n_test']} test examples)",
        "",
        f"{'log Z':<22}{'estimate':>12}{'log(Z-3sd)':>12}{'log(Z+3sd)':>12}   ESS",
        f"{'forward AIS':<22}{number(r['log_z_forward'])}{number(fwd['log_z_lower'])}{number(fwd['log_z_upper'])}   "
        f"{fwd['ess']:.1f} of {s['n_chains']} chains",
        *convergence,
        reverse,
        f"{'exact':<22}{number(r['log_z_exact'])}",
        "",
        f"{'NLL bound (nats)' if bound else 'NLL (nats/example)':<22}{'lower':>12}{'upper':>12}{'exact':>12}",
        *(f"{split:<22}{number(nll[split]['lower'])}{number(nll[split]['upper'])}{number(nll[split]['exact'])}"
          for split in ("train", "test")),
        ("  the mean-field bound E(v, mu) - H(q) + log Z, above the NLL; lower: with forward AIS log Z "
         "(optimistic), upper: with reverse AIS log Z (conservative as far as the chains reached the model)"
         if bound else "  lower: forward AIS log Z (optimistic); upper: RAISE log Z (conservative)"),
        "",
        f"settings {s['n_betas']} betas ({s['schedule']} schedule), {s['n_chains']} chains, base {s['base']}, "
        f"{s['dtype']}, seed {s['seed']}; {'RAISE' if 'burn_in' not in rev['settings'] else 'reverse AIS'} "
        f"{rev['settings']['n_betas']} betas on {rev['settings']['n_examples']} test examples",
        f"time     {r['seconds']:.1f} s (forward {fwd['seconds']:.1f} s, reverse {rev['seconds']:.1f} s)",
    ]
    return "\n".join(lines)


def latent_variable_table(report, result, split, n_classified=None):
    """The report of `zoo eval` for a latent-variable model's `result` (`ImportanceEvaluation`) on `split`: the
    NLL at each K, the log Z of a BiHM, the accuracy (on `n_classified` images) of a model that classifies."""
    z = result.log_z
    lines = [f"model    {report['model']} ({report['model_summary']})",
             f"dataset  {result.dataset} ({result.n_examples} {split} examples)"]
    if "accuracy" in report:
        lines.append(f"accuracy {100 * report['accuracy']:.2f} % ({split} split, {n_classified} images)")
    if z:
        lines.append(f"log Z    {number(z['log_z'], 0)} +- {number(z['std'], 0)} ({z['n_samples']} samples of p, "
                     f"{z['k']} of q each; ESS {number(z['ess'], 0, 1)}; {number(z['seconds'], 0, 1)} s)")
    lines.append("")
    extra = f"{'p NLL':>10}{'p ESS':>8}" if z else ""
    lines.append(f"{'K':>8}{split + ' NLL':>16}{'+- (se)':>10}{'ESS':>10}{extra}{'seconds':>10}")
    for r in result.results:  # JSON form: "inf" for an infinite error, None for NaN
        extra = f"{number(r['p_nll'], 10, 2)}{number(r['p_ess'], 8, 1)}" if z else ""
        lines.append(f"{r['k']:>8}{number(r['nll'], 16)}{number(r['std'], 10)}{number(r['ess'], 10, 1)}"
                     f"{extra}{number(r['seconds'], 10, 1)}")
    if z:
        lines.append("  log p*(x) = log p~*(x) - log Z: log p~*(x) by importance sampling from q, a stochastic "
                     "lower bound tightening with K, and log Z-hat too low on average (so the NLL's two errors "
                     "lean opposite ways); p NLL: the generative model p alone, from the same samples")
    else:
        lines.append("  importance sampling from the inference network: a stochastic lower bound on log p(x) "
                     "(an upper one on the NLL), tightening with K")
    return "\n".join(lines)
