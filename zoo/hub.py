"""Pretrained models by name: archives of model folders, their registry, a verified cache, load by name.

- `pack(folder, out_dir)`: a byte-for-byte reproducible `NAME.tar.gz` of a model folder.
- `build_registry(folders, out_dir)`: packs folders and writes `registry.json` (file, sha256, size, urls and a
  summary of each card), a README table generated from the cards, and (pages_dir) one page per checkpoint.
- `fetch(name)`: the archive from a mirror (`mirror=` or `$ZOO_MODELS_URL`) or from the registry's own urls
  (by default the archive bundled next to `zoo/pretrained/registry.json`), sha256 checked before anything is
  unpacked, unpacked safely into `$ZOO_HOME/models/NAME/` (default `~/.cache/zoo/models/NAME/`).
- `resolve(name_or_path)` / `load(name_or_path)`: the folder / the Keras model of a model folder or of a
  registered name (fetched if needed). `list_models()`: the registry's entries.

The registry is the trusted side: its sha256 is what a download must match, wherever it comes from.
"""
import contextlib
import datetime
import gzip
import hashlib
import json
import math
import os
import re
import shutil
import sys
import tarfile
import tempfile
from pathlib import Path, PurePosixPath

from zoo import export, files

FORMAT = "zoo-registry/1"
REGISTRY_FILE = "registry.json"
REGISTRY = Path(__file__).resolve().parent / "pretrained" / REGISTRY_FILE  # the bundled registry (package data)
STAMP_FILE = ".zoo-fetch.json"  # in a fetched folder: the sha256 of the archive it came from
MIRROR_ENV = "ZOO_MODELS_URL"
SUMMARY_FIELDS = ("model", "dataset", "binarization", "command", "seed", "lineage", "finetune_defaults")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def pack(folder, out_dir):
    """Write `out_dir/NAME.tar.gz` of the model folder `folder` (NAME = its name; members `NAME/...`) and
    return its path. Deterministic: sorted members, mtime 0, owner 0, normalised modes, gzip mtime 0 and no
    file name in the gzip header, so the same folder gives the same sha256 (with the same zlib)."""
    folder = Path(folder)
    name = check_name(folder.name, f"model folder {folder}")
    for required in (export.MODEL_FILE, export.CARD_FILE):
        if not (folder / required).is_file():
            raise ValueError(f"{folder} is not a model folder: it has no {required}")
    out = Path(out_dir) / f"{name}.tar.gz"
    out.parent.mkdir(parents=True, exist_ok=True)

    def write(tmp):
        with open(tmp, "wb") as raw, \
                gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=9) as gz, \
                tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for path in _walk(folder):
                rel = path.relative_to(folder).as_posix()
                info = tarfile.TarInfo(name if rel == "." else f"{name}/{rel}")
                info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
                if path.is_dir():
                    info.type, info.mode = tarfile.DIRTYPE, 0o755
                    tar.addfile(info)
                else:
                    info.mode, info.size = 0o644, path.stat().st_size
                    with open(path, "rb") as f:
                        tar.addfile(info, f)

    files.write_atomically(out, write)
    return out


def build_registry(folders, out_dir=REGISTRY.parent, mirrors=(), command=None, pages_dir=None):
    """Pack each model folder into `out_dir` and write `out_dir/registry.json` and `out_dir/README.md`.

    The registry lists exactly `folders`: {"format": "zoo-registry/1", "models": {NAME: {"file", "sha256",
    "size", "urls", "summary"}}}; `urls` is the archive's name (relative to the registry) then
    `MIRROR/NAME.tar.gz` for each of `mirrors`; `summary` is the card's model, dataset, binarization,
    command, seed and metrics. The README's table is generated from the same, with `command` (the command
    that regenerated it) underneath. Returns the path of registry.json."""
    out_dir = Path(out_dir)
    folders = [Path(f) for f in folders]
    if not folders:
        raise ValueError("no model folders given: nothing to register")
    names = [f.name for f in folders]
    if len(set(names)) != len(names):
        raise ValueError(f"two model folders share a name: {', '.join(sorted(names))}")
    cards = [export.read_card(folder) for folder in folders]  # every folder checked before anything is written
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out_dir, prefix=".registry.tmp-"))
    try:  # all archives first, then they replace the old ones: no registry points at a half-made set
        archives = [pack(folder, tmp) for folder in folders]
        models = {}
        for folder, card, archive in zip(folders, cards, archives):
            summary = {key: card.get(key) for key in SUMMARY_FIELDS}
            summary["metrics"] = card.get("metrics") or {}
            models[folder.name] = {"file": archive.name, "sha256": _sha256(archive), "size": archive.stat().st_size,
                                   "urls": [archive.name] + [_join(m, archive.name) for m in mirrors],
                                   "summary": summary}
        for archive in archives:
            os.replace(archive, out_dir / archive.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    registry = {"format": FORMAT, "models": dict(sorted(models.items()))}
    if command is None:
        command = f"zoo.hub.build_registry({[str(f) for f in folders]!r}, out_dir={str(out_dir)!r})"
    text = json.dumps(registry, indent=2, sort_keys=True, default=export._jsonable) + "\n"
    files.write_atomically(out_dir / REGISTRY_FILE, lambda p: p.write_text(text))
    readme = _registry_readme(registry["models"], command)
    files.write_atomically(out_dir / "README.md", lambda p: p.write_text(readme))
    if pages_dir is not None:  # one page per checkpoint, from its card
        pages_dir = Path(pages_dir)
        pages_dir.mkdir(parents=True, exist_ok=True)
        for folder, card in zip(folders, cards):
            page = checkpoint_page(folder.name, card, registry["models"][folder.name], command)
            files.write_atomically(pages_dir / f"{folder.name}.md", lambda p, page=page: p.write_text(page))
    return out_dir / REGISTRY_FILE


def list_models(registry=None):
    """The registered models, sorted by name: [{"name", "file", "sha256", "size", "urls", "summary"}].
    An empty list when the registry does not exist (no models registered yet)."""
    return [{"name": name, **entry} for name, entry in sorted(_read_registry(registry).items())]


def fetch(name, mirror=None, registry=None, cache_dir=None, force=False):
    """Make `cache_dir/NAME/` (default `$ZOO_HOME/models/NAME/`) hold the registered model `name`; return it.

    Source: `mirror` (a base URL, or a local folder) + "/" + the archive's name, else `$ZOO_MODELS_URL`
    likewise, else the registry entry's urls in order (a relative one is a file next to the registry, so
    by default the archive bundled in `zoo/pretrained/`). `registry`: path of a registry.json (default
    `REGISTRY`). The archive goes into a temporary folder in the cache and must match the registry's
    sha256 before anything is unpacked (ValueError naming both hashes otherwise); it is unpacked with
    tarfile's "data" filter after checking every member stays inside NAME/, and the folder moves into
    place only once complete, so a failure leaves nothing behind. A folder fetched earlier from the same
    archive (its stamp holds the registry's sha256) is returned without a download, unless `force`.
    """
    registry = Path(registry) if registry is not None else REGISTRY
    entry = _entry(_read_registry(registry), name, registry)
    cache = Path(cache_dir).expanduser() if cache_dir is not None else files.zoo_home() / "models"
    target = cache / name
    if not force and _stamp(target) == entry["sha256"] and (target / export.MODEL_FILE).is_file():
        return target

    try:
        cache.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=cache, prefix=f".{name}.tmp-"))
    except OSError as exc:
        raise OSError(f"cannot write the model cache {cache}: {exc.strerror or exc} (point ZOO_HOME, or "
                      "cache_dir, at a writable folder)") from None
    try:
        archive, source = _download(name, entry, _sources(entry, registry, mirror), tmp)
        folder = _unpack(archive, tmp / "unpacked", name)
        stamp = {"sha256": entry["sha256"], "source": str(source),
                 "fetched": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
        (folder / STAMP_FILE).write_text(json.dumps(stamp, indent=2) + "\n")
        if target.exists() or target.is_symlink():
            os.replace(target, tmp / "previous")  # an outdated copy: removed with tmp below
        os.replace(folder, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def resolve(name_or_path, **fetch_kwargs):
    """The model folder for `name_or_path`: an existing folder as is, else the registered model of that
    name, fetched if needed (`fetch_kwargs` go to `fetch`)."""
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return path
    registry = fetch_kwargs.get("registry")
    models = _read_registry(registry)
    if str(name_or_path) not in models:
        raise ValueError(f"{name_or_path} is not a model folder (no such directory) nor a registered model: "
                         f"{_known(models, registry)}")
    return fetch(str(name_or_path), **fetch_kwargs)


def load(name_or_path, **fetch_kwargs):
    """The Keras model of a model folder or of a registered model name (fetched if needed, see `fetch`)."""
    model, _ = export.load_folder(resolve(name_or_path, **fetch_kwargs))
    return model


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


# --- registry ---

def _read_registry(path=None):
    """{name: entry} from a registry.json, checked; {} when the file does not exist."""
    path = Path(path) if path is not None else REGISTRY
    try:
        registry = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"registry {path} does not parse as JSON: {exc}") from None
    if not isinstance(registry, dict) or registry.get("format") != FORMAT or not isinstance(
            registry.get("models"), dict):
        raise ValueError(f"registry {path} is not a {FORMAT} file")
    for name, entry in registry["models"].items():
        # names and file names become paths in the cache and URLs: no separators, no ".."
        check_name(name, f"registry {path}: model")
        if not (isinstance(entry, dict) and isinstance(entry.get("file"), str) and _NAME.fullmatch(entry["file"])
                and re.fullmatch(r"[0-9a-f]{64}", str(entry.get("sha256")))):
            raise ValueError(f"registry {path}: entry {name!r} needs a plain file name and a sha256")
        entry.setdefault("urls", [entry["file"]])
    return registry["models"]


def _known(models, registry):
    if not models:
        return f"no models registered yet ({Path(registry or REGISTRY)} does not exist or lists none)"
    return f"known models: {', '.join(sorted(models))}"


def _entry(models, name, registry):
    if name not in models:
        raise ValueError(f"unknown model {name!r}: {_known(models, registry)}")
    return models[name]


def _registry_readme(models, command):
    rows = ["| name | model | dataset | metrics | size | sha256 |", "|---|---|---|---|---|---|"]
    details = []
    for name, entry in models.items():
        s = entry["summary"]
        rows.append(f"| {name} | {s.get('model') or '-'} | {s.get('dataset') or '-'} | "
                    f"{describe_metrics(s.get('metrics')) or '-'} | {format_size(entry['size'])} | "
                    f"`{entry['sha256'][:12]}` |")
        details.append(f"- **{name}** (`{entry['file']}`): binarisation {s.get('binarization') or '-'}; seed "
                       f"{'-' if s.get('seed') is None else s['seed']}; trained by `{s.get('command') or '-'}`"
                       + (f"; {len(s['lineage'])} stages, see [its page](../../docs/checkpoints/{name}.md)"
                          if s.get("lineage") else ""))
    return "\n".join([
        "# zoo/pretrained/", "",
        "Bundled checkpoints: archives of model folders and `registry.json` (sha256, size, urls, and a summary",
        "of each model card). `zoo list` shows them, `zoo fetch NAME` unpacks one into the cache, and",
        "`zoo.load(\"NAME\")` returns the Keras model. The metrics and the settings that measured them are in",
        "`registry.json` and in each archive's `card.json`.", "",
        *rows, "", *details, "",
        f"Generated from the model folders' cards by `{command}`: do not edit by hand.", ""])


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
        by_k = metrics.get("test_nll_by_k") if isinstance(metrics.get("test_nll_by_k"), dict) else {}
        commands = list(dict.fromkeys([v.get("command") for v in by_k.values() if isinstance(v, dict)
                                       and v.get("command")] or [metrics.get("command", "-")]))
        lines += [f"{describe_metrics(metrics) or '-'} ({kind}; on `{metrics.get('dataset', '?')}`), by", "",
                  *(f"    {command}" for command in commands), ""]
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


# --- fetch ---

def _sources(entry, registry, mirror):
    """Where to get the archive, in order: Paths (local files) and URLs (str)."""
    mirror = mirror if mirror is not None else os.environ.get(MIRROR_ENV) or None
    urls = [mirror] if mirror else entry["urls"]
    sources = []
    for url in urls:
        if mirror:
            url = _join(url, entry["file"])
        if "://" in url:
            sources.append(url)
        else:  # a local folder as mirror, or a name relative to the registry
            sources.append((Path(url).expanduser() if mirror else registry.parent / url).absolute())
    return sources


def _download(name, entry, sources, tmp):
    """(archive in `tmp`, its source): the first source whose file matches the registry's sha256."""
    errors = []
    for source in sources:
        archive = tmp / entry["file"]
        try:
            if isinstance(source, Path):
                try:
                    shutil.copyfile(source, archive)
                except OSError as exc:
                    raise OSError(f"cannot read the archive of {name!r} at {source}: {exc.strerror}") from None
            else:
                _get_file(source, archive)
            actual = _sha256(archive)
            if actual != entry["sha256"]:
                raise ValueError(f"the archive of {name!r} from {source} is corrupted or truncated: expected "
                                 f"sha256 {entry['sha256']}, got {actual}; nothing was kept")
            return archive, source
        except (OSError, ValueError) as exc:
            archive.unlink(missing_ok=True)
            errors.append(exc)
    if len(errors) == 1:
        raise errors[0]
    kind = ValueError if all(isinstance(e, ValueError) for e in errors) else OSError
    raise kind(f"no source of {name!r} worked: " + "; ".join(map(str, errors)))


def _get_file(url, archive):
    import keras

    # Keras prints its progress on stdout: stderr keeps stdout for results (`zoo fetch` prints paths)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            keras.utils.get_file(archive.name, url, cache_dir=str(archive.parent), cache_subdir="")
    except Exception as exc:  # get_file raises a bare Exception for HTTP and network errors
        # its message is "URL fetch failure on URL: CODE -- REASON", CODE None for network errors
        reason = str(exc).removeprefix(f"URL fetch failure on {url}: ").removeprefix("None -- ")
        raise OSError(f"could not download {url}: {reason}") from None
    if not archive.is_file():
        raise OSError(f"could not download {url}: no file arrived")


def _unpack(archive, dest, name):
    """Unpack `archive` into `dest` and return `dest/name`, refusing any member outside `name/` (absolute
    paths, `..`, other top-level names) and anything but files and folders (links could point outside)."""
    try:
        with tarfile.open(archive, "r:gz") as tar:
            members = tar.getmembers()
            for m in members:
                parts = PurePosixPath(m.name).parts
                if PurePosixPath(m.name).is_absolute() or ".." in parts or not parts or parts[0] != name:
                    raise ValueError(f"archive {archive.name} has a member {m.name!r} outside {name}/: refused")
                if not (m.isfile() or m.isdir()):
                    raise ValueError(f"archive {archive.name} has a link or special file {m.name!r}: refused "
                                     "(model archives hold only files and folders)")
            tar.extractall(dest, members=members, filter="data")
    except (tarfile.TarError, EOFError, gzip.BadGzipFile) as exc:
        raise ValueError(f"archive {archive.name} cannot be unpacked: {exc}") from None
    folder = dest / name
    for required in (export.MODEL_FILE, export.CARD_FILE):
        if not (folder / required).is_file():
            raise ValueError(f"archive {archive.name} holds no model folder: {name}/{required} is missing")
    return folder


def _stamp(folder):
    try:
        return json.loads((folder / STAMP_FILE).read_text()).get("sha256")
    except (OSError, ValueError, AttributeError):
        return None


# --- small helpers ---

def check_name(name, what):
    if not _NAME.fullmatch(name):
        raise ValueError(f"{what} name {name!r} must be letters, digits, '.', '_' or '-', starting with a letter "
                         "or digit")
    return name


def _walk(folder):
    """Every path under `folder` (itself first) in sorted order; symbolic links are refused."""
    paths = []
    for root, dirs, names in os.walk(folder):
        dirs.sort()
        for link in (n for n in dirs + names if os.path.islink(os.path.join(root, n))):
            raise ValueError(f"{os.path.join(root, link)} is a symbolic link: model archives hold only files "
                             "and folders")
        paths += [Path(root)] + [Path(root, f) for f in sorted(names)]
    return paths


def _sha256(path):
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _join(base, file):
    return base.rstrip("/") + "/" + file


def _is_number(x):
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _format(x):
    if isinstance(x, float) and (x == 0 or 0.01 <= abs(x) < 1e6):
        return f"{x:.2f}"
    return f"{x:.4g}" if isinstance(x, float) else str(x)
