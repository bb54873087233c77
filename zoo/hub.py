"""Pretrained models by name: archives of model weights, their cards, the registry, a verified cache, load by name.

The checkout's `pretrained/` folder holds `NAME.tar.gz` (a model folder's weights and files: what changes only
when the weights change), `cards/NAME.json` (its card: metrics, commands, notes, as a plain file that is edited
without touching the archive) and `registry.json`, generated from the two: each archive's file name, sha256,
size and URLs, with its card in full. The wheel carries the registry, not the archives.

- `pack(folder, out_dir)`: a byte-for-byte reproducible `NAME.tar.gz` of a model folder, without its card.
- `publish(folder, pretrained_dir)`: a model folder whose weights are new: its archive and its card file.
- `build_registry(folders, out_dir)`: publishes `folders` (if any), then writes `registry.json` for every card
  in `out_dir/cards/`, its README table and (pages_dir) one page per checkpoint (their Markdown: `zoo.pages`);
  archives are only read.
- `fetch(name)`: the archive from a mirror (`mirror=` or `$ZOO_MODELS_URL`), else from the registry's own URLs,
  else from the checkout's `pretrained/` folder beside the registry; sha256 checked before anything is
  unpacked, unpacked safely into `$ZOO_HOME/models/NAME/` (default `~/.cache/zoo/models/NAME/`), with the
  registry's card as its card.json.
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

from zoo import export, files, pages

FORMAT = "zoo-registry/1"
REGISTRY_FILE = "registry.json"
CARDS_DIR = "cards"
#: a checkout's pretrained/ folder (archives, cards, registry.json); absent from an installed wheel
PRETRAINED = Path(__file__).resolve().parent.parent / "pretrained"
#: the registry the package reads: the checkout's, else the copy a wheel carries as package data (setup.py)
REGISTRY = PRETRAINED / REGISTRY_FILE if (PRETRAINED / REGISTRY_FILE).is_file() else \
    Path(__file__).resolve().parent / REGISTRY_FILE
STAMP_FILE = ".zoo-fetch.json"  # in a fetched folder: the sha256 of the archive it came from
MIRROR_ENV = "ZOO_MODELS_URL"
SUMMARY_FIELDS = ("model", "dataset", "binarization", "command", "seed", "lineage", "finetune_defaults")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def pack(folder, out_dir):
    """Write `out_dir/NAME.tar.gz` of the model folder `folder` (NAME = its name; members `NAME/...`) without
    its card.json (the card travels in the registry, so that editing it never changes the archive) and
    return its path. Deterministic: sorted members, mtime 0, owner 0, normalised modes, gzip mtime 0 and no
    file name in the gzip header, so the same folder gives the same sha256 (with the same zlib)."""
    folder = Path(folder)
    name = check_name(folder.name, f"model folder {folder}")
    _check_model_folder(folder)
    out = Path(out_dir) / f"{name}.tar.gz"
    out.parent.mkdir(parents=True, exist_ok=True)

    def write(tmp):
        with open(tmp, "wb") as raw, \
                gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=9) as gz, \
                tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for path in _walk(folder):
                rel = path.relative_to(folder).as_posix()
                if rel == export.CARD_FILE:
                    continue
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


def _check_model_folder(folder):
    for required in (export.MODEL_FILE, export.CARD_FILE):
        if not (Path(folder) / required).is_file():
            raise ValueError(f"{folder} is not a model folder: it has no {required}")


def publish(folder, pretrained_dir=PRETRAINED):
    """A model folder whose weights are new or changed: pack it into `pretrained_dir/NAME.tar.gz` and copy its
    card to `pretrained_dir/cards/NAME.json` (strict JSON). Returns the archive's path. A card alone (new
    metrics or prose) needs no packing: edit or copy the card file and rebuild the registry."""
    folder, pretrained_dir = Path(folder), Path(pretrained_dir)
    card = export.read_card(folder)
    archive = pack(folder, pretrained_dir)
    write_card(pretrained_dir, folder.name, card)
    return archive


def write_card(pretrained_dir, name, card):
    """Write `pretrained_dir/cards/NAME.json`: the card as strict JSON (NaN -> null), keys sorted."""
    check_name(name, "model")
    path = Path(pretrained_dir) / CARDS_DIR / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    text = strict_json({**card, "name": name})
    files.write_atomically(path, lambda p: p.write_text(text))
    return path


def read_cards(pretrained_dir=PRETRAINED):
    """{NAME: card} of every `pretrained_dir/cards/NAME.json`, sorted by name; clear errors for bad files."""
    cards = {}
    for path in sorted((Path(pretrained_dir) / CARDS_DIR).glob("*.json")):
        try:
            card = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ValueError(f"card {path} does not parse as JSON: {exc}") from None
        if not isinstance(card, dict):
            raise ValueError(f"card {path} is not a model card (a JSON object)")
        cards[check_name(path.stem, f"card {path}: model")] = card
    return cards


def build_registry(folders=(), out_dir=PRETRAINED, mirrors=(), url_template=None, command=None, pages_dir=None,
                   readme=None):
    """Publish each model folder of `folders` into `out_dir` (`publish`: its archive and card file), then write
    `out_dir/registry.json` and `out_dir/README.md` for every card in `out_dir/cards/`, reading (never
    re-packing) the archive beside each. Returns the path of registry.json.

    The registry: {"format": "zoo-registry/1", "url_template": ..., "models": {NAME: {"file", "sha256", "size",
    "urls", "summary", "card"}}}; `urls`: `MIRROR/NAME.tar.gz` for each of `mirrors`, then `url_template` with
    {file}, {name} and {sha256} filled in (e.g. a release asset's URL; kept from the previous registry when not
    given); `card`: the card file in full, which a fetched folder gets as its card.json; `summary`: the card's
    model, dataset, binarization, command, seed and metrics, for `zoo list`. Strict JSON (NaN becomes null).
    The README's table is generated from the same, with `command` (the command that regenerated it) underneath;
    `readme`: a README.md whose pretrained table (`zoo.pages.update_readme`) is regenerated too."""
    out_dir = Path(out_dir)
    folders = [Path(f) for f in folders]
    names = [f.name for f in folders]
    if len(set(names)) != len(names):
        raise ValueError(f"two model folders share a name: {', '.join(sorted(names))}")
    for folder in folders:  # every folder checked before anything is written
        _check_model_folder(folder)
        export.read_card(folder)
    for folder in folders:
        publish(folder, out_dir)
    cards = read_cards(out_dir)
    if not cards:
        raise ValueError(f"no cards in {out_dir / CARDS_DIR}: nothing to register (give model folders)")
    if url_template is None:
        url_template = _read_registry_file(out_dir / REGISTRY_FILE).get("url_template") if (
            out_dir / REGISTRY_FILE).is_file() else None
    models = {}
    for name, card in cards.items():
        archive = out_dir / f"{name}.tar.gz"
        if not archive.is_file():
            raise ValueError(f"card {out_dir / CARDS_DIR / (name + '.json')} has no archive {archive}: publish "
                             "its model folder, or remove the card")
        summary = {key: card.get(key) for key in SUMMARY_FIELDS}
        summary["metrics"] = card.get("metrics") or {}
        sha256 = _sha256(archive)
        urls = [_join(m, archive.name) for m in mirrors]
        if url_template:
            urls.append(url_template.format(file=archive.name, name=name, sha256=sha256))
        models[name] = {"file": archive.name, "sha256": sha256, "size": archive.stat().st_size, "urls": urls,
                        "summary": summary, "card": card}
    registry = {"format": FORMAT, "models": models}
    if url_template:
        registry["url_template"] = url_template
    if command is None:
        command = f"zoo.hub.build_registry({[str(f) for f in folders]!r}, out_dir={str(out_dir)!r})"
    text = strict_json(registry)
    files.write_atomically(out_dir / REGISTRY_FILE, lambda p: p.write_text(text))
    table = pages.registry_readme(models, command)
    files.write_atomically(out_dir / "README.md", lambda p: p.write_text(table))
    if readme is not None:
        pages.update_readme(readme, models)
    if pages_dir is not None:  # one page per checkpoint, from its card
        pages_dir = Path(pages_dir)
        pages_dir.mkdir(parents=True, exist_ok=True)
        for name, card in cards.items():
            page = pages.checkpoint_page(name, card, models[name], command)
            files.write_atomically(pages_dir / f"{name}.md", lambda p, page=page: p.write_text(page))
    return out_dir / REGISTRY_FILE


def strict_json(obj):
    """`obj` as indented, key-sorted JSON that strict parsers (jq, JavaScript) accept: NaN becomes null,
    infinities the strings "inf" and "-inf" (as in the estimators' JSON form), NumPy values plain numbers."""
    def clean(x):
        if isinstance(x, float) and not math.isfinite(x):
            return None if math.isnan(x) else ("inf" if x > 0 else "-inf")
        if isinstance(x, dict):
            return {str(k): clean(v) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return [clean(v) for v in x]
        if hasattr(x, "tolist"):  # NumPy scalars and arrays
            return clean(x.tolist())
        return x

    return json.dumps(clean(obj), indent=2, sort_keys=True, allow_nan=False, default=str) + "\n"


def list_models(registry=None):
    """The registered models, sorted by name: [{"name", "file", "sha256", "size", "urls", "summary"}].
    An empty list when the registry does not exist (no models registered yet)."""
    return [{"name": name, **entry} for name, entry in sorted(_read_registry(registry).items())]


def fetch(name, mirror=None, registry=None, cache_dir=None, force=False):
    """Make `cache_dir/NAME/` (default `$ZOO_HOME/models/NAME/`) hold the registered model `name`; return it.

    Source: `mirror` (a base URL, or a local folder) + "/" + the archive's name, else `$ZOO_MODELS_URL`
    likewise (a mirror, when given, is the only source); else the registry entry's urls in order, then the
    archive beside the registry (a checkout's `pretrained/` folder): the first whose file matches.
    `registry`: path of a registry.json (default `REGISTRY`). The archive goes into a temporary folder in the
    cache and must match the registry's sha256 before anything is unpacked (ValueError naming both hashes
    otherwise); it is unpacked with tarfile's "data" filter after checking every member stays inside NAME/,
    gets the registry's card as its card.json, and moves into place only once complete, so a failure leaves
    nothing behind. A folder fetched earlier from the same archive (its stamp holds the registry's sha256) is
    returned without a download, unless `force`; its card.json is brought up to date with the registry's.
    """
    registry = Path(registry) if registry is not None else REGISTRY
    entry = _entry(_read_registry(registry), name, registry)
    cache = Path(cache_dir).expanduser() if cache_dir is not None else files.zoo_home() / "models"
    target = cache / name
    if not force and _stamp(target) == entry["sha256"] and (target / export.MODEL_FILE).is_file():
        _write_fetched_card(target, entry)  # the card may have been edited since: the archive was not
        return target

    try:
        cache.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=cache, prefix=f".{name}.tmp-"))
    except OSError as exc:
        raise OSError(f"cannot write the model cache {cache}: {exc.strerror or exc} (point ZOO_HOME, or "
                      "cache_dir, at a writable folder)") from None
    try:
        try:
            archive, source = _download(name, entry, _sources(entry, registry, mirror), tmp)
        except OSError as exc:
            if mirror or os.environ.get(MIRROR_ENV):
                raise
            raise OSError(f"{exc} (to fetch it from elsewhere: --mirror URL or ${MIRROR_ENV})") from None
        folder = _unpack(archive, tmp / "unpacked", name)
        _write_fetched_card(folder, entry)
        if not (folder / export.CARD_FILE).is_file():
            raise ValueError(f"neither the registry nor the archive of {name!r} holds its card")
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


# --- registry ---

def _read_registry(path=None):
    """{name: entry} from a registry.json, checked; {} when the file does not exist."""
    path = Path(path) if path is not None else REGISTRY
    try:
        registry = _read_registry_file(path)
    except FileNotFoundError:
        return {}
    if not isinstance(registry, dict) or registry.get("format") != FORMAT or not isinstance(
            registry.get("models"), dict):
        raise ValueError(f"registry {path} is not a {FORMAT} file")
    for name, entry in registry["models"].items():
        # names and file names become paths in the cache and URLs: no separators, no ".."
        check_name(name, f"registry {path}: model")
        if not (isinstance(entry, dict) and isinstance(entry.get("file"), str) and _NAME.fullmatch(entry["file"])
                and re.fullmatch(r"[0-9a-f]{64}", str(entry.get("sha256")))):
            raise ValueError(f"registry {path}: entry {name!r} needs a plain file name and a sha256")
        entry.setdefault("urls", [])
    return registry["models"]


def _read_registry_file(path):
    """The parsed registry.json at `path` (FileNotFoundError when absent)."""
    try:
        return json.loads(Path(path).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"registry {path} does not parse as JSON: {exc}") from None


def _known(models, registry):
    if not models:
        return f"no models registered yet ({Path(registry or REGISTRY)} does not exist or lists none)"
    return f"known models: {', '.join(sorted(models))}"


def _entry(models, name, registry):
    if name not in models:
        raise ValueError(f"unknown model {name!r}: {_known(models, registry)}")
    return models[name]


# --- fetch ---

def _sources(entry, registry, mirror):
    """Where to get the archive, in order: Paths (local files) and URLs (str). A mirror alone; else the
    registry's urls (a relative one names a file beside the registry), then the file beside the registry."""
    mirror = mirror if mirror is not None else os.environ.get(MIRROR_ENV) or None
    if mirror:
        url = _join(mirror, entry["file"])
        return [url if "://" in url else Path(url).expanduser().absolute()]
    sources = [url if "://" in url else (registry.parent / url).absolute() for url in entry["urls"]]
    beside = (registry.parent / entry["file"]).absolute()
    return sources + ([beside] if beside not in sources else [])


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
    if not (folder / export.MODEL_FILE).is_file():
        raise ValueError(f"archive {archive.name} holds no model folder: {name}/{export.MODEL_FILE} is missing")
    return folder


def _write_fetched_card(folder, entry):
    """The registry's card as the folder's card.json (archives packed before cards left them hold an older
    copy), written only when it differs."""
    card = entry.get("card")
    if not isinstance(card, dict):
        return
    text = strict_json(card)
    path = Path(folder) / export.CARD_FILE
    try:
        if path.read_text() == text:
            return
    except OSError:
        pass
    files.write_atomically(path, lambda p: p.write_text(text))


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
