"""zoo.hub: reproducible archives without their cards, cards as plain files, the registry (strict JSON, in sync
with the archives and cards) and its README, fetch through a loopback HTTP mirror, the registry's URLs or a
checkout's folder with sha256 checks, safe unpacking, the cache, load by name, and `zoo list` / `zoo fetch`."""
import hashlib
import http.server
import io
import json
import os
import runpy
import shutil
import socket
import sys
import tarfile
import threading
from pathlib import Path

import keras
import numpy as np
import pytest

import zoo
from zoo import cli, export, hub, pages

NAME = "tiny-rbm"
ARCHIVE = f"{NAME}.tar.gz"
SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"


class _Server:
    """A loopback HTTP server of `root` in a thread, counting the GET requests it answers."""

    def __init__(self, root):
        self.root, self.requests = Path(root), []
        server = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, directory=str(server.root), **kwargs)

            def do_GET(self):
                server.requests.append(self.path)
                super().do_GET()

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def model():
    return zoo.RBM(4, n_visible=6, seed=0)


@pytest.fixture(scope="module")
def folder(model, tmp_path_factory):
    card = export.make_card(model, name=NAME, dataset="digits", metrics={"test_nll": {"lower": 1.0, "upper": 2.0}})
    return export.save(model, tmp_path_factory.mktemp("models") / NAME, card)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    server = _Server(tmp_path_factory.mktemp("www"))
    yield server
    server.close()


@pytest.fixture(scope="module")
def registry(folder, server):
    """registry.json of the tiny model, in a folder the server serves as /reg."""
    return hub.build_registry([folder], server.root / "reg")


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("ZOO_HOME", str(tmp_path / "home"))
    monkeypatch.delenv(hub.MIRROR_ENV, raising=False)
    for var in ("no_proxy", "NO_PROXY"):  # a proxy from the environment must not intercept the loopback server
        monkeypatch.setenv(var, "127.0.0.1,localhost")
    return tmp_path / "home"


def _sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _assert_cache_clean(home):
    """No model folder, no temporary file or folder: the models cache is absent or empty."""
    models = home / "models"
    assert not models.exists() or not os.listdir(models), os.listdir(models)


def _free_energies_equal(a, b):
    x = np.random.default_rng(0).integers(0, 2, (16, 6)).astype("float32")
    np.testing.assert_array_equal(np.asarray(a.free_energy(x)), np.asarray(b.free_energy(x)))


def _hand_made_registry(directory, members):
    """An archive of `members` [(TarInfo, bytes or None)] registered under NAME with its true sha256."""
    directory.mkdir(parents=True, exist_ok=True)
    with tarfile.open(directory / ARCHIVE, "w:gz") as tar:
        for info, content in members:
            if content is not None:
                info.size = len(content)
            tar.addfile(info, io.BytesIO(content) if content is not None else None)
    entry = {"file": ARCHIVE, "sha256": _sha256(directory / ARCHIVE), "size": (directory / ARCHIVE).stat().st_size,
             "urls": [ARCHIVE], "summary": {}}
    (directory / "registry.json").write_text(json.dumps({"format": hub.FORMAT, "models": {NAME: entry}}))
    return directory / "registry.json"


def _file(name, content=b"{}"):
    return tarfile.TarInfo(name), content


# --- archives and the registry ---

def test_pack_is_reproducible(folder, tmp_path):
    first = hub.pack(folder, tmp_path / "a")
    os.utime(folder / export.MODEL_FILE, (1e9, 1e9))  # times and owners must not reach the archive
    second = hub.pack(folder, tmp_path / "b")
    assert first.name == ARCHIVE and first.read_bytes() == second.read_bytes()
    with tarfile.open(first) as tar:
        members = tar.getmembers()
    names = [m.name for m in members]
    assert names[0] == NAME and all(n.startswith(NAME + "/") for n in names[1:])
    assert {f"{NAME}/model.keras", f"{NAME}/saved_model"} <= set(names)
    assert f"{NAME}/card.json" not in names  # the card travels in the registry: editing it re-packs nothing
    assert all(m.mtime == 0 and m.uid == 0 and m.gid == 0 and m.uname == "" for m in members)
    assert not [p for p in (tmp_path / "a").iterdir() if p.name != ARCHIVE]  # no temporary file left


def test_pack_refuses_what_is_not_a_model_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="not a model folder: it has no model.keras"):
        hub.pack(tmp_path / "empty", tmp_path / "out")


def test_registry_and_readme_come_from_the_cards(registry, folder):
    data = json.loads(registry.read_text())
    assert data["format"] == "zoo-registry/1" and list(data["models"]) == [NAME]
    entry = data["models"][NAME]
    archive = registry.parent / ARCHIVE
    assert entry["file"] == ARCHIVE and entry["urls"] == []  # no mirror, no URL template: the folder itself
    assert entry["sha256"] == _sha256(archive) and entry["size"] == archive.stat().st_size
    assert entry["card"] == {**export.read_card(folder), "name": NAME}
    assert json.loads((registry.parent / "cards" / f"{NAME}.json").read_text()) == entry["card"]
    assert entry["summary"]["model"] == "RBM" and entry["summary"]["dataset"] == "digits"
    assert entry["summary"]["metrics"] == {"test_nll": {"lower": 1.0, "upper": 2.0}}
    assert {"binarization", "command", "seed"} <= set(entry["summary"])
    readme = (registry.parent / "README.md").read_text()
    row = next(line for line in readme.splitlines() if line.startswith(f"| {NAME} "))
    for cell in ("RBM", "digits", "test_nll [1.00, 2.00]", pages.format_size(entry["size"]), entry["sha256"][:12]):
        assert cell in row
    assert "zoo.hub.build_registry(" in readme and "do not edit by hand" in readme


def test_a_staged_checkpoint_gets_a_generated_page(model, tmp_path):
    lineage = [{"stage": 1, "command": "zoo train rbm --out models/a", "epochs": 4,
                "result": {"test_nll": [90.0, 91.5]}, "note": "the first stage"},
               {"stage": 2, "command": "zoo train rbm --init-from models/a --out models/b", "epochs": 2,
                "result": {"test_nll": [88.25, 89.0], "ess": 12.5}, "eval_command": "zoo eval models/b"}]
    card = export.make_card(model, lineage=lineage, finetune_defaults={"shift": 2},
                            metrics={"test_nll": {"lower": 88.25, "upper": 89.0}, "command": "zoo eval b"})
    folder = export.save(model, tmp_path / NAME, card, saved_model=False)
    registry = hub.build_registry([folder], tmp_path / "out", pages_dir=tmp_path / "pages", command="make it")
    assert json.loads(registry.read_text())["models"][NAME]["summary"]["lineage"] == lineage
    line = next(line for line in (registry.parent / "README.md").read_text().splitlines() if NAME in line and "**" in line)
    assert line.endswith(f"; 2 stages, see [its page](../docs/checkpoints/{NAME}.md)")
    page = (tmp_path / "pages" / f"{NAME}.md").read_text()
    assert "| 1 | 4 | - | [90.00, 91.50] | - | - | the first stage |" in page
    assert "| 2 | 2 | - | [88.25, 89.00] | - | 12.50 | - |" in page
    assert "2. `zoo train rbm --init-from models/a --out models/b`\n   measured by `zoo eval models/b`" in page
    assert "test_nll [88.25, 89.00]" in page and "shift 2" in page and "by `make it`" in page


def test_make_registry_script_records_its_command_and_mirrors(folder, tmp_path, capsys):
    script = runpy.run_path(str(SCRIPTS / "make_registry.py"), run_name="make_registry")
    argv = [str(folder), "--out-dir", str(tmp_path / "pre"), "--pages-dir", str(tmp_path / "pages"), "--mirror",
            "https://example.org/zoo/"]
    assert script["main"](argv) == 0
    entry = hub.list_models(tmp_path / "pre" / "registry.json")[0]
    assert entry["urls"] == [f"https://example.org/zoo/{ARCHIVE}"]
    assert "python scripts/make_registry.py " in (tmp_path / "pre" / "README.md").read_text()
    assert "python scripts/make_registry.py " in (tmp_path / "pages" / f"{folder.name}.md").read_text()
    assert entry["sha256"] in capsys.readouterr().out
    capsys.readouterr()
    # a URL template is filled in per archive and kept by the next rebuild, which packs nothing
    archive_before = (tmp_path / "pre" / ARCHIVE).stat().st_mtime_ns
    assert script["main"](["--out-dir", str(tmp_path / "pre"), "--pages-dir", str(tmp_path / "pages"),
                           "--url-template", "https://example.org/v1/{name}/{file}"]) == 0
    assert script["main"](["--out-dir", str(tmp_path / "pre"), "--pages-dir", str(tmp_path / "pages")]) == 0
    assert hub.list_models(tmp_path / "pre" / "registry.json")[0]["urls"] == [f"https://example.org/v1/{NAME}/{ARCHIVE}"]
    assert (tmp_path / "pre" / ARCHIVE).stat().st_mtime_ns == archive_before
    capsys.readouterr()
    for argv, message in [([str(tmp_path / "nothing-here")], "not a model folder"),
                          (["--out-dir", str(tmp_path / "empty")], "no cards in"),
                          (["--card", str(folder), "--out-dir", str(tmp_path / "empty")], "no archive tiny-rbm.tar.gz")]:
        assert script["main"](argv) == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and message in err, err


def test_editing_a_card_changes_no_archive(folder, tmp_path, home, capsys):
    """A card's prose, notes or metrics are edited in cards/NAME.json: the rebuilt registry carries them, every
    archive keeps its bytes and sha256, and a folder fetched before gets the new card without a download."""
    registry = hub.build_registry([folder], tmp_path / "pre")
    archive = tmp_path / "pre" / ARCHIVE
    before = (archive.read_bytes(), hub.list_models(registry)[0]["sha256"])
    fetched = hub.fetch(NAME, registry=registry)
    card_file = tmp_path / "pre" / "cards" / f"{NAME}.json"
    card = json.loads(card_file.read_text())
    card["notes"] = "a corrected sentence"
    card["metrics"]["test_nll"]["upper"] = 1.5
    card_file.write_text(json.dumps(card))
    hub.build_registry(out_dir=tmp_path / "pre")
    [entry] = hub.list_models(registry)
    assert (archive.read_bytes(), entry["sha256"]) == before
    assert entry["card"]["notes"] == "a corrected sentence" and entry["summary"]["metrics"]["test_nll"]["upper"] == 1.5
    os.remove(archive)  # no source left: the cached folder must be reused, with the new card
    assert hub.fetch(NAME, registry=registry) == fetched
    assert export.read_card(fetched)["notes"] == "a corrected sentence"
    # and publishing the card of a model folder (`--card`) rewrites the card file only
    script = runpy.run_path(str(SCRIPTS / "make_registry.py"), run_name="make_registry")
    shutil.copyfile(tmp_path / "pre" / "cards" / f"{NAME}.json", tmp_path / "card-copy.json")
    (tmp_path / "pre" / ARCHIVE).write_bytes(before[0])
    assert script["main"](["--card", str(folder), "--out-dir", str(tmp_path / "pre"), "--pages-dir",
                           str(tmp_path / "pages")]) == 0
    assert (archive.read_bytes(), hub.list_models(registry)[0]["sha256"]) == before
    assert "notes" not in hub.list_models(registry)[0]["card"]


def test_registry_json_is_strict(folder, tmp_path):
    """NaN (an exact log Z too large to enumerate) becomes null; infinities "inf": jq and JavaScript parse it."""
    card = {**export.read_card(folder), "metrics": {"log_z": {"exact": float("nan"), "upper": float("inf")}}}
    registry = tmp_path / "pre" / "registry.json"
    shutil.copytree(folder, tmp_path / "nan" / NAME)
    (tmp_path / "nan" / NAME / "card.json").write_text(json.dumps(card))  # Python's json writes NaN
    hub.build_registry([tmp_path / "nan" / NAME], tmp_path / "pre")

    def refuse(constant):
        raise ValueError(f"not strict JSON: {constant}")

    for path in (registry, tmp_path / "pre" / "cards" / f"{NAME}.json"):
        data = json.loads(path.read_text(), parse_constant=refuse)
    assert data["metrics"]["log_z"] == {"exact": None, "upper": "inf"}


# --- fetch ---

def test_fetch_through_a_mirror_then_from_the_cache(registry, server, model, home):
    mirror = f"{server.url}/reg"
    before = len(server.requests)
    path = hub.fetch(NAME, mirror=mirror, registry=registry)
    assert path == home / "models" / NAME
    assert server.requests[before:] == [f"/reg/{ARCHIVE}"]
    assert sorted(os.listdir(home / "models")) == [NAME]  # no temporary folder left
    _free_energies_equal(zoo.load(NAME, mirror=mirror, registry=registry), model)
    assert hub.fetch(NAME, mirror=mirror, registry=registry) == path
    assert len(server.requests) == before + 1  # the second fetch and the load were no-ops

    # a stamp that does not match the registry (a new version of the model) fetches again; so does force
    stamp = path / hub.STAMP_FILE
    stamp.write_text(json.dumps({"sha256": "0" * 64}))
    hub.fetch(NAME, mirror=mirror, registry=registry)
    assert len(server.requests) == before + 2 and json.loads(stamp.read_text())["sha256"] != "0" * 64
    hub.fetch(NAME, mirror=mirror, registry=registry, force=True)
    assert len(server.requests) == before + 3 and sorted(os.listdir(home / "models")) == [NAME]


def test_fetch_uses_the_mirror_from_the_environment(registry, server, monkeypatch):
    monkeypatch.setenv(hub.MIRROR_ENV, f"{server.url}/reg/")
    before = len(server.requests)
    hub.fetch(NAME, registry=registry)
    assert server.requests[before:] == [f"/reg/{ARCHIVE}"]


def test_fetch_from_the_registrys_url_then_the_checkout(folder, server, tmp_path, home):
    """Without a mirror: the registry's own URLs first (a release asset's, say), then the archive beside the
    registry; an archive from the URL that does not match the sha256 is skipped for the next source."""
    out = server.root / "release"
    registry = hub.build_registry([folder], out, url_template=f"{server.url}/release/{{file}}")
    before = len(server.requests)
    hub.fetch(NAME, registry=registry)
    assert server.requests[before:] == [f"/release/{ARCHIVE}"]
    shutil.copytree(out, tmp_path / "checkout")  # a checkout whose registry names a URL that serves a bad file
    (out / ARCHIVE).write_bytes(b"not the archive")
    path = hub.fetch(NAME, registry=tmp_path / "checkout" / "registry.json", force=True)
    assert len(server.requests) == before + 2 and (path / export.MODEL_FILE).is_file()


def test_a_registry_without_a_source_says_how_to_give_one(folder, tmp_path, home):
    """A wheel's registry has no archive beside it: without a URL or mirror, the error names the way out."""
    registry = hub.build_registry([folder], tmp_path / "pre")
    (tmp_path / "wheel").mkdir()
    shutil.copyfile(registry, tmp_path / "wheel" / "registry.json")
    with pytest.raises(OSError, match=r"cannot read the archive .* \(to fetch it from elsewhere: --mirror URL or "
                                      r"\$ZOO_MODELS_URL\)"):
        hub.fetch(NAME, registry=tmp_path / "wheel" / "registry.json")
    _assert_cache_clean(home)


def test_the_checkout_registry_is_in_sync_with_its_archives_and_cards():
    """pretrained/registry.json is what make_registry.py makes of pretrained/: each archive's sha256 and size,
    each card in full; and the checkout fetches offline with no flag."""
    models = hub.list_models(hub.PRETRAINED / "registry.json")
    cards = hub.read_cards(hub.PRETRAINED)

    def refuse(constant):
        raise ValueError(f"not strict JSON: {constant}")

    for path in [hub.PRETRAINED / "registry.json", *(hub.PRETRAINED / "cards").glob("*.json")]:
        json.loads(path.read_text(), parse_constant=refuse)  # what jq and JavaScript accept
    assert [m["name"] for m in models] == sorted(cards) and len(models) >= 7
    for m in models:
        archive = hub.PRETRAINED / m["file"]
        assert m["size"] == archive.stat().st_size and m["sha256"] == _sha256(archive), m["name"]
        assert m["card"] == cards[m["name"]] and m["summary"]["metrics"] == (cards[m["name"]].get("metrics") or {})
    assert hub.REGISTRY == hub.PRETRAINED / "registry.json"
    # the README's pretrained table is generated from the same registry, not typed
    readme = (hub.PRETRAINED.parent / "README.md").read_text()
    table = pages.pretrained_table({m["name"]: m for m in models})
    assert f"{pages.README_START}\n{table}\n{pages.README_END}" in readme
    loaded, card = export.load_folder(hub.fetch("grbm-digits"))  # the smallest: 31 kB
    assert card == cards["grbm-digits"] and loaded.n_hidden == 16


def test_an_archive_and_a_registry_without_a_card_are_refused(tmp_path, home):
    registry = _hand_made_registry(tmp_path / "nocard", [_file(f"{NAME}/model.keras", b"x")])
    with pytest.raises(ValueError, match="neither the registry nor the archive of 'tiny-rbm' holds its card"):
        hub.fetch(NAME, registry=registry)
    _assert_cache_clean(home)


@pytest.mark.parametrize("mirror", [None, "local folder"])
def test_fetch_from_the_bundled_folder(registry, server, model, mirror):
    before = len(server.requests)
    path = hub.fetch(NAME, registry=registry, mirror=str(registry.parent) if mirror else None)
    assert len(server.requests) == before  # no download
    loaded, card = export.load_folder(path)
    _free_energies_equal(loaded, model)
    assert card["name"] == NAME


@pytest.mark.parametrize("via", ["mirror", "bundled"])
@pytest.mark.parametrize("damage", ["corrupted", "truncated"])
def test_a_damaged_archive_is_refused_and_leaves_nothing(registry, server, home, damage, via):
    directory = server.root / f"{damage}-{via}"
    shutil.copytree(registry.parent, directory)
    good = (directory / ARCHIVE).read_bytes()
    bad = good[: len(good) // 2] if damage == "truncated" else good[:200] + bytes([good[200] ^ 1]) + good[201:]
    (directory / ARCHIVE).write_bytes(bad)
    mirror = f"{server.url}/{directory.name}" if via == "mirror" else None
    with pytest.raises(ValueError) as exc:
        hub.fetch(NAME, mirror=mirror, registry=directory / "registry.json")
    message = str(exc.value)
    assert "corrupted or truncated" in message
    assert hashlib.sha256(good).hexdigest() in message and hashlib.sha256(bad).hexdigest() in message
    _assert_cache_clean(home)


def test_a_server_that_is_down_or_a_missing_file_names_the_url(registry, server, home):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(OSError, match=f"could not download http://127.0.0.1:{port}/{ARCHIVE}"):
        hub.fetch(NAME, mirror=f"http://127.0.0.1:{port}", registry=registry)
    with pytest.raises(OSError, match=f"could not download {server.url}/nowhere/{ARCHIVE}: 404"):
        hub.fetch(NAME, mirror=f"{server.url}/nowhere", registry=registry)
    _assert_cache_clean(home)


def test_unknown_names_and_a_missing_registry(registry, tmp_path):
    with pytest.raises(ValueError, match=f"unknown model 'nope': known models: {NAME}"):
        hub.fetch("nope", registry=registry)
    with pytest.raises(ValueError, match="no models registered yet"):
        hub.fetch(NAME, registry=tmp_path / "none" / "registry.json")
    assert hub.list_models(tmp_path / "none" / "registry.json") == []
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ValueError, match="does not parse as JSON"):
        hub.list_models(tmp_path / "bad.json")


def _symlink(name, target):
    info = tarfile.TarInfo(name)
    info.type, info.linkname = tarfile.SYMTYPE, target
    return info, None


@pytest.mark.parametrize("member, message", [
    (_file("../evil"), "'../evil' outside tiny-rbm/: refused"),
    (_file(f"{NAME}/../../evil"), "outside tiny-rbm/: refused"),
    (_file("/zoo-hub-test-evil"), "'/zoo-hub-test-evil' outside tiny-rbm/: refused"),
    (_file("other/evil"), "outside tiny-rbm/: refused"),
    (_symlink(f"{NAME}/evil", "../../../evil"), "link or special file"),
])
def test_an_archive_escaping_its_folder_is_refused(tmp_path, home, member, message):
    members = [_file(f"{NAME}/card.json"), _file(f"{NAME}/model.keras", b"x"), member]
    registry = _hand_made_registry(tmp_path / "evil", members)
    with pytest.raises(ValueError, match=message):
        hub.fetch(NAME, registry=registry)
    _assert_cache_clean(home)
    assert not (home / "evil").exists() and not (tmp_path / "evil" / "evil").exists()
    assert not Path("/zoo-hub-test-evil").exists()


def test_an_archive_without_a_model_folder_is_refused(tmp_path, home):
    registry = _hand_made_registry(tmp_path / "half", [_file(f"{NAME}/card.json")])
    with pytest.raises(ValueError, match="holds no model folder: tiny-rbm/model.keras is missing"):
        hub.fetch(NAME, registry=registry)
    _assert_cache_clean(home)


def test_an_unwritable_cache_is_a_clear_error(registry, tmp_path, monkeypatch):
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("x")
    monkeypatch.setenv("ZOO_HOME", str(not_a_folder))
    with pytest.raises(OSError, match=f"cannot write the model cache {not_a_folder}/models: .*ZOO_HOME"):
        hub.fetch(NAME, registry=registry)
    assert not_a_folder.read_text() == "x"


# --- load by name or folder ---

def test_load_a_folder_or_a_name(registry, folder, model):
    _free_energies_equal(zoo.load(folder), model)
    _free_energies_equal(zoo.load(NAME, registry=registry), model)
    with pytest.raises(ValueError, match=f"not a model folder .* nor a registered model: known models: {NAME}"):
        zoo.load("no-such-model", registry=registry)


# --- the command line ---

def _run(capsys, args):
    code = cli.main(args)
    out, err = capsys.readouterr()
    return code, out, err


def test_zoo_list(registry, tmp_path, capsys):
    code, out, _ = _run(capsys, ["list", "--json", "--registry", str(registry)])
    assert code == 0
    [entry] = json.loads(out)
    assert entry["name"] == NAME and entry["summary"]["metrics"]["test_nll"] == {"lower": 1.0, "upper": 2.0}
    code, out, _ = _run(capsys, ["list", "--registry", str(registry)])
    header, row = out.splitlines()
    assert header.split() == ["name", "model", "dataset", "metrics", "size"]
    assert row.startswith(NAME) and "RBM" in row and "digits" in row and "test_nll [1.00, 2.00]" in row
    code, out, _ = _run(capsys, ["list", "--registry", str(tmp_path / "registry.json")])
    assert code == 0 and "no models registered yet" in out


def test_zoo_fetch_and_its_script(registry, server, home, capsys, monkeypatch):
    code, out, _ = _run(capsys, ["fetch", NAME, "--mirror", f"{server.url}/reg", "--registry", str(registry)])
    assert code == 0 and out.split() == [NAME, str(home / "models" / NAME)]
    monkeypatch.setattr(hub, "REGISTRY", registry)
    monkeypatch.setattr(sys, "argv", ["fetch_models.py", "--all", "--force"])
    with pytest.raises(SystemExit) as exc:
        runpy.run_path(str(SCRIPTS / "fetch_models.py"), run_name="__main__")
    assert exc.value.code == 0 and capsys.readouterr().out.split() == [NAME, str(home / "models" / NAME)]


@pytest.mark.parametrize("args, message", [
    (["fetch", "nope"], f"unknown model 'nope': known models: {NAME}"),
    (["fetch"], "name the models to fetch, or pass --all"),
    (["fetch", NAME, "--all"], "not both"),
    (["eval", "nope"], f"nor a registered model: known models: {NAME}"),
])
def test_zoo_fetch_bad_input_is_one_line(registry, home, capsys, monkeypatch, args, message):
    monkeypatch.setattr(hub, "REGISTRY", registry)
    code, out, err = _run(capsys, args)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and message in err, err
    _assert_cache_clean(home)


def test_zoo_eval_resolves_a_registered_name(registry, home, capsys, monkeypatch):
    monkeypatch.setattr(hub, "REGISTRY", registry)
    # digits has 64 features and the tiny model 6 visible units: the error proves the name was fetched and loaded
    code, _, err = _run(capsys, ["eval", NAME, "--dataset", "digits"])
    assert code == 2 and "the model has 6 visible units" in err
    assert (home / "models" / NAME / export.MODEL_FILE).is_file()


def test_zoo_eval_of_a_name_reproduces_its_card(tmp_path, home, capsys, monkeypatch):
    """The card's `metrics.command`, run by name on the fetched model, gives the card's numbers again."""
    digits = zoo.data.load("digits").train.x
    model = zoo.RBM(5, n_visible=64, seed=0, visible=zoo.units.BernoulliUnits(allow_nonbinary=True))
    model.compile(keras.optimizers.SGD(0.1))
    model.fit(digits, batch_size=50, epochs=1, verbose=0)
    folder = export.save(model, tmp_path / "models" / "digits-rbm", export.make_card(model, dataset="digits"))
    assert cli.main(["eval", str(folder), "--ais-betas", "100", "--ais-chains", "8", "--reverse-examples", "5",
                     "--json", "--write-card"]) == 0
    capsys.readouterr()
    metrics = export.read_card(folder)["metrics"]
    monkeypatch.setattr(hub, "REGISTRY", hub.build_registry([folder], tmp_path / "reg"))
    command = metrics["command"].split()
    assert command[:3] == ["zoo", "eval", "digits-rbm"]
    code, out, err = _run(capsys, command[1:])
    assert code == 0, err
    again = json.loads(out)
    assert again["nll"]["test"] == metrics["test_nll"] and again["log_z_forward"] == metrics["log_z"]["forward"]


def test_describe_metrics_names_a_bihms_log_z_and_a_hybrids_accuracy():
    line = pages.describe_metrics({"test_nll_by_k": {"10": {"nll": 92.03, "n_examples": 10000}},
                                 "log_z": {"log_z": -3.8653, "std": 0.0092, "n_samples": 1000000, "command": "x"},
                                 "test_accuracy": {"accuracy": 0.9712, "n_examples": 10000}})
    assert line == "test_nll K=10 92.03; log_z -3.87 ± 0.0092 (1,000,000 samples of p); test_accuracy 97.12 %"


def test_the_pretrained_table_says_what_each_card_measured():
    """Headline numbers come from the card's metrics, the few-shot cell from its few_shot record."""
    card = {"description": "an RBM", "data_description": "digits", "metrics": {
        "test_nll": {"lower": 86.1, "upper": 86.5, "exact": None}, "command": "zoo eval m", "dataset": "bm"},
        "few_shot": {"seeds": 3, "command": "zoo finetune m --table", "accuracy": {
            k: {"mean": m, "std": 0.5} for k, m in (("pretrained", 85.0), ("random", 78.25), ("frozen", 80.0))}}}
    table = pages.pretrained_table({"m": {"card": card, "size": 2_000_000}})
    row, note = table.splitlines()[2], table.splitlines()[-1]
    assert row == ("| `m` | an RBM | digits | test NLL [86.10, 86.50] nats (1) | fine-tuned 85.00 ± 0.50 %, random init "
                   "78.25 ± 0.50 %, frozen features 80.00 ± 0.50 % (3 seeds) | 2.0 MB |")
    assert note == ("1. Trained by `python scripts/train_pretrained.py m`; measured by `zoo eval m` (on `bm`); few-shot: "
                    "`zoo finetune m --table`; [its page](docs/checkpoints/m.md).")
    bihm = {"log_z": {"log_z": -3.8653, "command": "a"}, "test_nll_by_k": {"10": {"nll": 92.03, "command": "a"},
                                                                          "10000": {"nll": 90.78, "command": "b"}}}
    assert pages.headline(bihm) == "test -log p*(x) 90.78 nats at K = 10,000, log Z -3.87"
    assert pages.headline({"test_accuracy": {"accuracy": 0.8786}}) == "test accuracy 87.86 %"
