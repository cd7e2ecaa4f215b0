"""Offline weights packs (inference/weights_pack): export, verify, refuse damaged or hostile packs
without touching what is installed, install atomically; the segmentation backend then finds its
weights and the model folder loads. Real tar files, real folders, the shipped demo model."""
from __future__ import annotations

import hashlib
import io
import json
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from fakes.totalseg_env import make_fake_weights
from inference.errors import SegmentationError
from inference.segmentation import totalseg_weights as tsw
from inference.segmentation.totalseg_backend import TotalSegmentatorExpert
from inference.weights_pack.export import dataset_ids_for_tasks, export_pack, model_source, totalseg_sources
from inference.weights_pack.importer import PackError, import_pack, verify_pack
from inference.weights_pack.inventory import take_inventory
from inference.weights_pack.locations import Targets
from inference.weights_pack.manifest import MANIFEST_NAME

ROOT = Path(__file__).resolve().parents[1]
DEMO_MODEL = ROOT / "resources" / "demo_model"
TASKS = ["total", "liver_segments"]


def tree_digest(folder: Path) -> dict[str, str]:
    """Every file under folder with its sha256: 'nothing changed' made checkable."""
    if not folder.exists():
        return {}
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() or p.is_symlink()}


@pytest.fixture(scope="module")
def pack(tmp_path_factory) -> Path:
    """A pack of fake-but-complete TotalSegmentator folders for total + liver_segments and the demo model."""
    src = tmp_path_factory.mktemp("source")
    ids = dataset_ids_for_tasks(TASKS)
    results = make_fake_weights(src / "ts_home", ids)
    # a second file in one fold, so a dataset is more than the three files the check looks for
    (results / tsw.FOLDERS[570].folder / tsw.FOLDERS[570].model_dir / "fold_0" / "debug.json").write_text("{}")
    out = src / "weights.tcpack.tar"
    export_pack(out, totalseg_sources(results, ids) + [model_source(DEMO_MODEL)])
    return out


def fresh_targets(tmp_path: Path) -> Targets:
    return Targets.for_settings(tmp_path / "ts_home", tmp_path / "models")


def member_data_offset(pack: Path, name: str) -> int:
    with tarfile.open(pack) as tar:
        return tar.getmember(name).offset_data


def test_dataset_ids_for_tasks():
    assert dataset_ids_for_tasks(["total"]) == [291, 292, 293, 294, 295, 298]
    assert dataset_ids_for_tasks(["liver_segments"]) == [298, 570]
    assert dataset_ids_for_tasks(["total_fast"]) == [297]


def test_manifest_lists_every_file_with_size_and_sha256(pack):
    manifest = verify_pack(pack)
    names = [i.name for i in manifest.items]
    assert names[-1] == "demo_model" and tsw.FOLDERS[570].folder in names and len(names) == 8
    model = manifest.items[-1]
    files = {f.path: f for f in model.files}
    weights = DEMO_MODEL / "llm" / "model.safetensors"
    assert files["llm/model.safetensors"].size == weights.stat().st_size
    assert files["llm/model.safetensors"].sha256 == hashlib.sha256(weights.read_bytes()).hexdigest()
    with tarfile.open(pack) as tar:
        assert tar.getnames()[0] == MANIFEST_NAME


def test_good_pack_installs_and_backend_finds_weights_and_model_loads(pack, tmp_path):
    targets = fresh_targets(tmp_path)
    expert = TotalSegmentatorExpert(liver_segments=True, home_dir=tmp_path / "ts_home")
    with pytest.raises(SegmentationError, match="weights are missing"):
        expert._check_weights(tmp_path / "ts_home", {})
    report = import_pack(pack, targets)
    assert len(report.installed) == 8 and not any(i.replaced for i in report.installed)
    # the backend's own check (what runs before every segmentation) now passes
    assert expert._check_weights(tmp_path / "ts_home", {}) == tsw.needed_dataset_ids(liver_segments=True)
    inventory = take_inventory(targets)
    assert inventory.task_ready("total") and inventory.task_ready("liver_segments")
    assert not inventory.task_ready("total (fast, 3 mm)")
    assert [m.name for m in inventory.models] == ["demo_model"] and inventory.models[0].problem is None
    assert tree_digest(targets.models / "demo_model") == tree_digest(DEMO_MODEL)
    from inference.model.modeling_tumorchain import TumorChainModel

    model = TumorChainModel.from_pretrained(targets.models / "demo_model", device="cpu")
    assert model.config.model_type == "tumorchain"
    # no staging folders are left behind
    assert not [p for p in targets.models.iterdir() if p.name.startswith(".")]
    assert not [p for p in targets.totalseg_results.iterdir() if p.name.startswith(".")]


def test_one_corrupt_byte_is_refused_and_installs_nothing(pack, tmp_path):
    bad = tmp_path / "bad.tar"
    data = bytearray(pack.read_bytes())
    offset = member_data_offset(pack, "items/demo_model/llm/model.safetensors") + 5000
    data[offset] ^= 0xFF
    bad.write_bytes(bytes(data))
    targets = fresh_targets(tmp_path)
    with pytest.raises(PackError) as err:
        import_pack(bad, targets)
    text = str(err.value)
    assert str(bad) in text and "items/demo_model/llm/model.safetensors" in text and "sha256" in text
    assert "nothing was installed" in text
    # the TotalSegmentator datasets came before the bad file in the pack and passed, yet none is installed
    assert not (tmp_path / "ts_home").exists() and not (tmp_path / "models").exists()


def test_corrupt_pack_leaves_an_existing_install_untouched(pack, tmp_path):
    targets = fresh_targets(tmp_path)
    import_pack(pack, targets)
    before = tree_digest(tmp_path)
    data = bytearray(pack.read_bytes())
    data[member_data_offset(pack, "items/demo_model/config.json") + 3] ^= 0x01
    bad = tmp_path.parent / f"{tmp_path.name}-bad.tar"
    bad.write_bytes(bytes(data))
    with pytest.raises(PackError, match="items/demo_model/config.json"):
        import_pack(bad, targets)
    assert tree_digest(tmp_path) == before
    # a good pack again replaces the installed copies, and reports so
    report = import_pack(pack, targets)
    assert all(i.replaced for i in report.installed)
    assert tree_digest(tmp_path) == before


def test_a_full_disk_is_refused_before_anything_is_written(pack, tmp_path, monkeypatch):
    import shutil
    from inference.weights_pack import importer

    need = sum(i.size for i in importer.verify_pack(pack).items if i.kind.value == "model_folder")
    real = shutil.disk_usage
    monkeypatch.setattr(importer.shutil, "disk_usage", lambda p: real(p)._replace(free=need - 3 * 2**20))
    with pytest.raises(PackError) as err:
        import_pack(pack, fresh_targets(tmp_path))
    text = str(err.value)
    # in MiB, with what is missing: a CI machine printed "needs 1.16 GiB ..., only 1.16 GiB free"
    assert f"needs {need / 2**20:,.0f} MiB" in text and "(free 3 MiB more)" in text, text
    assert "nothing was installed" in text and not (tmp_path / "models").exists()


def test_truncated_pack_is_refused(pack, tmp_path):
    cut = tmp_path / "cut.tar"
    offset = member_data_offset(pack, "items/demo_model/model.safetensors")
    cut.write_bytes(pack.read_bytes()[:offset + 1000])
    with pytest.raises(PackError, match="items/demo_model/model.safetensors: truncated"):
        import_pack(cut, fresh_targets(tmp_path))
    assert not (tmp_path / "models").exists() and not (tmp_path / "ts_home").exists()


def _write_pack(path: Path, manifest: dict, members: list[tarfile.TarInfo | tuple[str, bytes]]) -> Path:
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        raw = json.dumps(manifest).encode()
        info = tarfile.TarInfo(MANIFEST_NAME)
        info.size = len(raw)
        tar.addfile(info, io.BytesIO(raw))
        for m in members:
            if isinstance(m, tarfile.TarInfo):
                tar.addfile(m)
            else:
                info = tarfile.TarInfo(m[0])
                info.size = len(m[1])
                tar.addfile(info, io.BytesIO(m[1]))
    return path


def _model_manifest(files: dict[str, bytes]) -> dict:
    return {"format": "tumorchain-weights-pack", "format_version": 1, "items": [
        {"kind": "model_folder", "name": "m", "files": [
            {"path": p, "size": len(b), "sha256": hashlib.sha256(b).hexdigest()} for p, b in files.items()]}]}


@pytest.mark.parametrize("case", ["symlink", "absolute", "traversal_member", "traversal_manifest",
                                  "partial", "unlisted", "hardlink", "bad_name"])
def test_hostile_or_partial_packs_are_refused(tmp_path, case):
    files = {"config.json": b"{}", "w.bin": b"12345"}
    manifest = _model_manifest(files)
    members: list = [("items/m/config.json", b"{}")]
    expect = None
    if case == "symlink":
        link = tarfile.TarInfo("items/m/w.bin")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        members.append(link)
        expect = "items/m/w.bin: is a symbolic or hard link"
    elif case == "hardlink":
        link = tarfile.TarInfo("items/m/w.bin")
        link.type, link.linkname = tarfile.LNKTYPE, "items/m/config.json"
        members.append(link)
        expect = "items/m/w.bin: is a symbolic or hard link"
    elif case == "absolute":
        members.append(("/tmp/evil", b"12345"))
        expect = "/tmp/evil: not listed in the manifest"
    elif case == "traversal_member":
        members.append(("items/m/../../evil", b"12345"))
        expect = "not listed in the manifest"
    elif case == "traversal_manifest":
        manifest["items"][0]["files"][1]["path"] = "../evil"
        members.append(("items/m/../evil", b"12345"))
        expect = "'../evil' leaves its folder"
    elif case == "partial":
        expect = "items/m/w.bin: listed in the manifest but not in the pack (partial pack"
    elif case == "unlisted":
        members += [("items/m/w.bin", b"12345"), ("items/m/extra.py", b"print(1)")]
        expect = "items/m/extra.py: not listed in the manifest"
    elif case == "bad_name":
        manifest["items"][0]["name"] = "../m"
        expect = "is not an acceptable folder name"
    pack = _write_pack(tmp_path / "p.tar", manifest, members)
    targets = fresh_targets(tmp_path / "t")
    with pytest.raises(PackError) as err:
        import_pack(pack, targets)
    assert expect in str(err.value) and "nothing was installed" in str(err.value)
    assert not (tmp_path / "t").exists() and not (tmp_path / "evil").exists()


def test_a_model_folder_that_would_not_load_is_refused(tmp_path):
    files = {"config.json": json.dumps({"model_type": "tumorchain", "auto_map": {"x": "y"}}).encode()}
    pack = _write_pack(tmp_path / "p.tar", _model_manifest(files), [("items/m/config.json", files["config.json"])])
    with pytest.raises(PackError, match="custom code"):
        import_pack(pack, fresh_targets(tmp_path / "t"))
    assert not (tmp_path / "t").exists()


def test_cli_round_trip_and_refusal(pack, tmp_path):
    env_args = ["--totalseg-home", str(tmp_path / "ts_home"), "--models-dir", str(tmp_path / "models")]
    cli = [sys.executable, "-m", "inference.cli", "weights"]
    bad = tmp_path / "bad.tar"
    bad.write_bytes(pack.read_bytes()[:-20000])
    run = subprocess.run(cli + ["import", str(bad)] + env_args, capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 2 and str(bad) in run.stderr and "nothing was installed" in run.stderr
    run = subprocess.run(cli + ["import", str(pack)] + env_args, capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 0, run.stderr
    assert "total: ready" in run.stdout and "liver_segments: ready" in run.stdout and "demo_model: ok" in run.stdout
    out = tmp_path / "again.tar"
    run = subprocess.run(cli + ["export", "--out", str(out), "--totalseg", "liver_segments",
                                "--totalseg-home", str(tmp_path / "ts_home")], capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 0, run.stderr
    run = subprocess.run(cli + ["list", str(out), "--verify"], capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 0 and "every file verified" in run.stdout and "Dataset570" in run.stdout


@pytest.mark.parametrize("suffix, magic", [(".tcpack.tar.gz", b"\x1f\x8b"), (".tcpack.tar.xz", b"\xfd7zXZ\x00")])
def test_compressed_pack_round_trip_and_damage(tmp_path, suffix, magic):
    """A pack named .tar.gz/.tar.xz is compressed (the runtime's libraries shrink 1.2 GB -> 0.4 GB);
    the importer checks every file as for a plain pack and the compressed stream's own checksum."""
    from inference.weights_pack.importer import read_manifest

    pack = tmp_path / f"w{suffix}"
    export_pack(pack, [model_source(DEMO_MODEL)])
    data = pack.read_bytes()
    assert data.startswith(magic)
    assert [i.name for i in read_manifest(pack).items] == ["demo_model"]
    targets = fresh_targets(tmp_path / "good")
    assert [i.item.name for i in import_pack(pack, targets).installed] == ["demo_model"]
    assert tree_digest(targets.models / "demo_model") == tree_digest(DEMO_MODEL)

    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0x10  # inside the model's weights, compressed
    cut = data[:-6]  # the stream's checksum and length: every file inside is still whole
    for name, damaged in (("flipped", bytes(flipped)), ("cut", cut)):
        bad = tmp_path / f"{name}{suffix}"
        bad.write_bytes(damaged)
        with pytest.raises(PackError) as err:
            import_pack(bad, fresh_targets(tmp_path / name))
        assert str(bad) in str(err.value) and "nothing was installed" in str(err.value), (name, str(err.value))
        assert not (tmp_path / name).exists()
