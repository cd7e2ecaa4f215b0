"""Label tables: the paper's Table 10 merged scheme, TotalSegmentator maps, substructures, colours."""
from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest

from inference.labels import (
    merged_labels,
    totalseg_liver_segments_to_parts,
    totalseg_names,
    totalseg_task_names,
    totalseg_to_merged,
)
from inference.labels.organ_labels import RESOURCES

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

# Table 10 of the paper (appendix 11.4), transcribed: merged id -> (name, TotalSegmentator ids).
TABLE_10 = {
    1: ("spleen", [1]), 2: ("kidney_right", [2]), 3: ("kidney_left", [3]), 4: ("gallbladder", [4]),
    5: ("liver", [5]), 6: ("stomach", [6]), 7: ("pancreas", [7]), 8: ("adrenal_gland_right", [8]),
    9: ("adrenal_gland_left", [9]), 10: ("lung_upper_lobe_left", [10]), 11: ("lung_lower_lobe_left", [11]),
    12: ("lung_upper_lobe_right", [12]), 13: ("lung_middle_lobe_right", [13]),
    14: ("lung_lower_lobe_right", [14]), 15: ("esophagus", [15]), 16: ("trachea", [16]),
    17: ("thyroid_gland", [17]), 18: ("small_bowel", [18]), 19: ("duodenum", [19]), 20: ("colorectum", [20]),
    21: ("urinary_bladder", [21]), 22: ("prostate", [22]), 23: ("kidney_cyst", [23, 24]),
    24: ("vertebrae_S1", [26]), 25: ("lumbar_vertebrae", [27, 28, 29, 30, 31]),
    26: ("thoracic_vertebrae", list(range(32, 44))), 27: ("cervical_vertebrae", list(range(44, 51))),
    28: ("sacrum", [25]), 29: ("humerus", [69, 70]), 30: ("scapula", [71, 72]), 31: ("clavicula", [73, 74]),
    32: ("femur", [75, 76]), 33: ("hip", [77, 78]), 34: ("rib_left", list(range(92, 104))),
    35: ("rib_right", list(range(104, 116))), 36: ("sternum", [116]), 37: ("costal_cartilages", [117]),
    38: ("heart", [51]), 39: ("aorta", [52]), 40: ("pulmonary_vein", [53]), 41: ("brachiocephalic_trunk", [54]),
    42: ("subclavian_artery", [55, 56]), 43: ("common_carotid_artery", [57, 58]),
    44: ("brachiocephalic_vein", [59, 60]), 45: ("atrial_appendage_left", [61]),
    46: ("superior_vena_cava", [62]), 47: ("inferior_vena_cava", [63]),
    48: ("portal_vein_and_splenic_vein", [64]), 49: ("iliac_artery", [65, 66]), 50: ("iliac_vena", [67, 68]),
    51: ("gluteus", [80, 81, 82, 83, 84, 85]), 52: ("autochthon", [86, 87]), 53: ("iliopsoas", [88, 89]),
    54: ("spinal_cord", [79]), 55: ("brain", [90]), 56: ("skull", [91]),
}

# Organs that touch in the abdomen/thorax; the viewer must tell them apart at a glance.
ADJACENT = """liver: stomach gallbladder kidney_right inferior_vena_cava portal_vein_and_splenic_vein duodenum colorectum adrenal_gland_right lung_lower_lobe_right heart esophagus rib_right
spleen: stomach kidney_left pancreas colorectum lung_lower_lobe_left adrenal_gland_left rib_left portal_vein_and_splenic_vein
stomach: pancreas esophagus colorectum small_bowel duodenum lung_lower_lobe_left heart
pancreas: duodenum portal_vein_and_splenic_vein small_bowel kidney_left aorta inferior_vena_cava adrenal_gland_left colorectum
kidney_right: duodenum colorectum adrenal_gland_right iliopsoas autochthon inferior_vena_cava kidney_cyst
kidney_left: colorectum adrenal_gland_left iliopsoas autochthon small_bowel kidney_cyst aorta
gallbladder: duodenum colorectum
duodenum: small_bowel colorectum inferior_vena_cava
small_bowel: colorectum urinary_bladder iliac_artery iliac_vena iliopsoas
colorectum: urinary_bladder prostate sacrum iliopsoas
urinary_bladder: prostate hip
aorta: inferior_vena_cava lumbar_vertebrae thoracic_vertebrae esophagus heart iliac_artery
inferior_vena_cava: lumbar_vertebrae heart iliac_vena adrenal_gland_right
iliac_artery: iliac_vena iliopsoas
esophagus: trachea heart thoracic_vertebrae
heart: lung_upper_lobe_left lung_lower_lobe_left lung_upper_lobe_right lung_middle_lobe_right lung_lower_lobe_right atrial_appendage_left pulmonary_vein superior_vena_cava
lung_upper_lobe_left: lung_lower_lobe_left
lung_upper_lobe_right: lung_middle_lobe_right lung_lower_lobe_right
lung_middle_lobe_right: lung_lower_lobe_right
lumbar_vertebrae: thoracic_vertebrae vertebrae_S1 autochthon iliopsoas spinal_cord
vertebrae_S1: sacrum
thoracic_vertebrae: cervical_vertebrae rib_left rib_right spinal_cord
sacrum: hip gluteus
hip: femur gluteus iliopsoas
rib_left: costal_cartilages
rib_right: costal_cartilages
sternum: costal_cartilages
thyroid_gland: trachea common_carotid_artery
subclavian_artery: brachiocephalic_trunk
brachiocephalic_vein: superior_vena_cava
brain: skull"""
ABDOMINAL_GROUPS = {"abdominal_organ", "digestive_primary", "vessel"}


def delta_e(rgb_a, rgb_b) -> float:
    """CIE76 colour difference of two sRGB colours (0..255)."""

    def lab(rgb):
        c = np.asarray(rgb, float) / 255.0
        c = np.where(c > 0.04045, ((c + 0.055) / 1.055) ** 2.4, c / 12.92)
        m = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]])
        xyz = m @ c / np.array([0.95047, 1.0, 1.08883])
        f = np.where(xyz > 216 / 24389, np.cbrt(xyz), (24389 / 27 * xyz + 16) / 116)
        return np.array([116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])])

    return float(np.linalg.norm(lab(rgb_a) - lab(rgb_b)))


def test_delta_e_reference_values():
    assert delta_e((255, 255, 255), (0, 0, 0)) == pytest.approx(100.0, abs=0.1)
    assert delta_e((255, 0, 0), (255, 0, 0)) == 0.0


def test_every_table_10_row_is_present():
    table = merged_labels()
    organs = table.organs()
    assert len(organs) == 56
    assert sorted(lab.id for lab in organs) == list(range(1, 57))
    for label_id, (name, ts_ids) in TABLE_10.items():
        lab = table.by_id(label_id)
        assert lab.name == name, label_id
        assert list(lab.totalseg_ids) == ts_ids, name
        assert table.by_name(name) is lab
        assert not lab.is_substructure


def test_totalseg_total_has_117_classes_and_each_maps_exactly_once():
    names = totalseg_names()
    assert sorted(names) == list(range(1, 118))
    assert names[20] == "colon" and names[64] == "portal_vein_and_splenic_vein" and names[117] == "costal_cartilages"
    mapped = [ts for _, ts_ids in TABLE_10.values() for ts in ts_ids]
    assert sorted(mapped) == list(range(1, 118))  # every class, none twice
    merged = totalseg_to_merged(np.arange(118, dtype=np.uint8))
    for label_id, (_, ts_ids) in TABLE_10.items():
        assert all(merged[ts] == label_id for ts in ts_ids)
    assert merged[0] == 0


def expected_totalseg_names(name: str) -> set[str]:
    """The TotalSegmentator class names that Table 10 folds into merged label ``name``."""
    special = {
        "colorectum": {"colon"},
        "kidney_cyst": {"kidney_cyst_left", "kidney_cyst_right"},
        "lumbar_vertebrae": {f"vertebrae_L{k}" for k in range(1, 6)},
        "thoracic_vertebrae": {f"vertebrae_T{k}" for k in range(1, 13)},
        "cervical_vertebrae": {f"vertebrae_C{k}" for k in range(1, 8)},
        "rib_left": {f"rib_left_{k}" for k in range(1, 13)},
        "rib_right": {f"rib_right_{k}" for k in range(1, 13)},
        "gluteus": {f"gluteus_{m}_{s}" for m in ("maximus", "medius", "minimus") for s in ("left", "right")},
    }
    if name in special:
        return special[name]
    return {name, f"{name}_left", f"{name}_right"}


def test_totalseg_names_agree_with_merged_names():
    names = totalseg_names()
    for name, ts_ids in TABLE_10.values():
        got = {names[ts] for ts in ts_ids}
        assert got <= expected_totalseg_names(name), (name, got)


def test_totalseg_to_merged_on_a_3d_array_keeps_shape_and_maps_values():
    rng = np.random.default_rng(0)
    ts = rng.integers(0, 118, size=(7, 5, 3)).astype(np.uint8)
    out = totalseg_to_merged(ts)
    assert out.shape == ts.shape and out.dtype == np.uint8
    expected = {ts_id: label_id for label_id, (_, ids) in TABLE_10.items() for ts_id in ids}
    for idx in np.ndindex(ts.shape):
        assert out[idx] == expected.get(int(ts[idx]), 0)
    # wider integer dtypes are accepted, out-of-range ids are refused with a clear message
    assert np.array_equal(totalseg_to_merged(ts.astype(np.int32)), out)
    with pytest.raises(ValueError, match="0..255"):
        totalseg_to_merged(np.array([5, 300]))
    with pytest.raises(ValueError, match="integers"):
        totalseg_to_merged(np.array([1.5]))
    # ids beyond the 117 classes (another task's labels) map to background
    assert totalseg_to_merged(np.array([118, 200], dtype=np.uint8)).tolist() == [0, 0]


def test_liver_segments_task_maps_to_substructures_101_to_108():
    names = totalseg_task_names("liver_segments")
    assert names == {k: f"liver_segment_{k}" for k in range(1, 9)}
    parts = totalseg_liver_segments_to_parts(np.arange(0, 10, dtype=np.uint8).reshape(2, 5))
    assert parts.tolist() == [[0, 101, 102, 103, 104], [105, 106, 107, 108, 0]]
    # the older per-label field in merged_labels.json agrees with the class map file
    data = json.loads((RESOURCES / "merged_labels.json").read_text())
    for entry in data["substructures"]:
        if "totalseg_liver_segments_id" in entry:
            assert names[entry["totalseg_liver_segments_id"]] == entry["name"]
    with pytest.raises(ValueError, match="no TotalSegmentator class map"):
        totalseg_task_names("no_such_task")


def test_substructures_have_valid_parents_and_stable_ids():
    table = merged_labels()
    expected = {
        **{100 + k: (f"liver_segment_{k}", "liver") for k in range(1, 9)},
        111: ("pancreas_head", "pancreas"), 112: ("pancreas_body", "pancreas"), 113: ("pancreas_tail", "pancreas"),
        121: ("stomach_cardia", "stomach"), 122: ("stomach_fundus", "stomach"), 123: ("stomach_body", "stomach"),
        124: ("stomach_antrum", "stomach"), 125: ("stomach_pylorus", "stomach"),
        131: ("cecum", "colorectum"), 132: ("ascending_colon", "colorectum"), 133: ("transverse_colon", "colorectum"),
        134: ("descending_colon", "colorectum"), 135: ("sigmoid_colon", "colorectum"), 136: ("rectum", "colorectum"),
        141: ("esophagus_upper", "esophagus"), 142: ("esophagus_middle", "esophagus"), 143: ("esophagus_lower", "esophagus"),
    }
    subs = table.substructures()
    for label_id, (name, parent) in expected.items():
        lab = table.by_id(label_id)
        assert lab.name == name and table.by_id(lab.parent).name == parent
        assert table.parent_or_self(label_id) == table.by_name(parent).id
    for lab in subs:
        assert 100 <= lab.id <= 255
        parent = table.by_id(lab.parent)
        assert not parent.is_substructure and 1 <= parent.id <= 56
        assert lab.totalseg_ids == ()
    assert table.parent_or_self(5) == 5
    assert {lab.id for lab in table.substructures(parent=7)} == {111, 112, 113}
    assert len({lab.name for lab in table}) == len(table)  # names unique too


def test_colours_are_valid_rgb_and_unique():
    table = merged_labels()
    for lab in table:
        assert len(lab.colour) == 3 and all(isinstance(c, int) and 0 <= c <= 255 for c in lab.colour), lab.name
    organ_colours = [lab.colour for lab in table.organs()]
    assert len(set(organ_colours)) == len(organ_colours)
    lut = table.colour_lut()
    assert lut.shape == (256, 4) and lut.dtype == np.uint8
    assert tuple(lut[5, :3]) == table.by_name("liver").colour and lut[5, 3] == 255
    assert lut[0, 3] == 0 and lut[99, 3] == 0


def test_adjacent_organs_have_distinct_colours():
    table = merged_labels()
    too_close = []
    for line in ADJACENT.splitlines():
        a, rest = line.split(":")
        for b in rest.split():
            la, lb = table.by_name(a), table.by_name(b)
            floor = 25.0 if {la.group, lb.group} <= ABDOMINAL_GROUPS else 20.0
            d = delta_e(la.colour, lb.colour)
            if d < floor:
                too_close.append((a, b, round(d, 1)))
    assert not too_close


def test_sibling_substructures_have_distinct_colours():
    table = merged_labels()
    for parent in {lab.parent for lab in table.substructures()}:
        sibs = table.substructures(parent=parent)
        for a, b in itertools.combinations(sibs, 2):
            assert delta_e(a.colour, b.colour) >= 15.0, (a.name, b.name)


def test_display_names_read_like_a_radiologist():
    table = merged_labels()
    assert table.by_name("kidney_right").display == "right kidney"
    assert table.by_name("adrenal_gland_left").display == "left adrenal gland"
    assert table.by_name("colorectum").display == "colon"
    assert table.by_name("portal_vein_and_splenic_vein").display == "portal and splenic vein"
    assert table.by_name("pancreas_head").display == "pancreatic head"
    assert len({lab.display for lab in table}) == len(table)


def test_merged_labels_json_is_one_label_per_line():
    lines = (RESOURCES / "merged_labels.json").read_text().splitlines()
    label_lines = [ln for ln in lines if ln.strip().startswith('{"id"')]
    assert len(label_lines) == len(merged_labels())


def test_example_totalsegmentator_mask_keeps_organ_voxel_counts():
    path = SHARED_DATA / "example_seg.nii.gz"
    if not path.is_file():
        pytest.skip(f"shared test data not found: {path}")
    nib = pytest.importorskip("nibabel")
    ts = np.asanyarray(nib.load(str(path)).dataobj)
    assert ts.dtype == np.uint8
    merged = totalseg_to_merged(ts)
    assert merged.shape == ts.shape
    for ts_id, label_id in [(5, 5), (1, 1), (2, 2), (3, 3), (7, 7), (6, 6)]:
        n = int((ts == ts_id).sum())
        assert n > 0
        assert int((merged == label_id).sum()) == n
    # grouped labels add up: all lumbar vertebrae in the file land in label 25, ribs in 34/35
    assert int((merged == 25).sum()) == int(np.isin(ts, range(27, 32)).sum()) > 0
    assert int((merged == 34).sum()) == int(np.isin(ts, range(92, 104)).sum()) > 0
    assert int((merged == 0).sum()) == int((ts == 0).sum())  # nothing mapped to background by mistake
