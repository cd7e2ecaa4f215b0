"""The organ matcher (paper eq. 2, Lambda) on report-style text: labels, negation, plurals, context."""
from __future__ import annotations

import json
from dataclasses import FrozenInstanceError

import pytest

from inference.labels import LabelTable, merged_labels
from inference.labels.organ_matcher import OrganMention, match_organs, organs_named, parent_or_self
from inference.labels.phrase_syntax import PhraseSyntaxError, expand, trie_regex
from inference.labels.synonyms import SYNONYMS_FILE, build_lexicon

T = merged_labels()


def ids(spec: str) -> tuple[int, ...]:
    """'kidney_right+kidney_left' -> (2, 3)"""
    return tuple(sorted(T.by_name(n).id for n in spec.split("+")))


def flags(m: OrganMention) -> str:
    if m.normal:
        assert m.negated
        return "normal"
    if m.negated:
        return "neg"
    return "unc" if m.uncertain else ""


def observed(text: str) -> list[tuple[tuple[int, ...], str]]:
    return [(m.label_ids, flags(m)) for m in match_organs(text)]


def expected(*pairs: tuple[str, str]) -> list[tuple[tuple[int, ...], str]]:
    return [(ids(spec), flag) for spec, flag in pairs]


# (report text, [(label names, flag)]) -- flag: "" present, "neg" negated, "normal" called normal, "unc" uncertain.
REPORT_SENTENCES = [
    ("There is a 3.2 x 2.8 cm hypoattenuating mass in the pancreatic head with upstream dilatation of the main "
     "pancreatic duct, without evidence of duodenal invasion.",
     [("pancreas_head", ""), ("pancreas", ""), ("duodenum", "neg")]),
    ("The mass abuts the superior mesenteric vein and encases the common hepatic artery; the portal vein is patent.",
     [("portal_vein_and_splenic_vein", "")]),
    ("The right kidney contains a 2.1 cm exophytic lesion; the left kidney is unremarkable.",
     [("kidney_right", ""), ("kidney_left", "normal")]),
    ("Segments VI and VII of the liver contain two arterially enhancing lesions with washout, suspicious for HCC.",
     [("liver_segment_6+liver_segment_7", ""), ("liver", ""), ("liver", "unc")]),
    ("Gastroesophageal junction wall thickening extending into the gastric cardia and lesser curvature.",
     [("esophagus_lower+stomach_cardia", ""), ("stomach_cardia", ""), ("stomach", "")]),
    ("Circumferential wall thickening of the gastric antrum with perigastric fat stranding; no gastric outlet "
     "obstruction.",
     [("stomach_antrum", ""), ("stomach", ""), ("stomach_pylorus", "neg")]),
    ("Sigmoid colon: 4 cm segment of circumferential wall thickening, suspicious for carcinoma. Rectum unremarkable.",
     [("sigmoid_colon", ""), ("rectum", "normal")]),
    ("Irregular thickening of the oesophageal wall in the lower third of the oesophagus, extending to the GOJ.",
     [("esophagus", ""), ("esophagus_lower", ""), ("esophagus_lower+stomach_cardia", "")]),
    ("Lesion in the right lobe of the liver (segment VII), 2.4 cm.",
     [("liver_segment_5+liver_segment_6+liver_segment_7+liver_segment_8", ""), ("liver_segment_7", "")]),
    ("Caudate lobe hypertrophy and left lateral segment atrophy, in keeping with cirrhosis.",
     [("liver_segment_1", ""), ("liver_segment_2+liver_segment_3", ""), ("liver", "")]),
    ("Enlarged para-aortic and aortocaval lymph nodes at the level of L2-L3.",
     [("aorta", ""), ("aorta+inferior_vena_cava", ""), ("lumbar_vertebrae", ""), ("lumbar_vertebrae", "")]),
    ("Small bilateral pleural effusions with bibasilar atelectasis.",
     [("lung_lower_lobe_left+lung_lower_lobe_right", "")]),
    ("Nodule in the right upper lobe, 6 mm; the lungs are otherwise clear.",
     [("lung_upper_lobe_right", ""),
      ("lung_upper_lobe_left+lung_lower_lobe_left+lung_upper_lobe_right+lung_middle_lobe_right+lung_lower_lobe_right",
       "normal")]),
    ("T3 tumour of the pancreatic body invading the splenic vein, N1 disease; no distant metastases to the liver.",
     [("pancreas_body", ""), ("portal_vein_and_splenic_vein", ""), ("liver", "neg")]),
    ("The tumor invades the muscularis propria of the rectum (T2), with no involvement of the mesorectal fascia, "
     "so the T stage is T2.",
     [("rectum", ""), ("rectum", "neg")]),
    ("Status post right hemicolectomy. No evidence of recurrence at the ileocolic anastomosis.",
     [("cecum+ascending_colon+transverse_colon", "")]),
    ("The IVC and hepatic veins are patent. The main portal vein measures 14 mm.",
     [("inferior_vena_cava", ""), ("liver", ""), ("portal_vein_and_splenic_vein", "")]),
    ("Hepatic arterial phase images show a 2 cm arterially enhancing lesion.", []),
    ("Mild hepatosplenomegaly. The spleen measures 15 cm.", [("liver+spleen", ""), ("spleen", "")]),
    ("Possible small bowel obstruction with dilated jejunal loops; the colon is decompressed.",
     [("small_bowel", "unc"), ("small_bowel", "unc"), ("colorectum", "")]),
    ("Gallbladder is absent (post cholecystectomy).", [("gallbladder", "neg"), ("gallbladder", "")]),
    ("Pancreatic head mass encasing the SMA; the uncinate process and duodenum are involved.",
     [("pancreas_head", ""), ("pancreas_head", ""), ("duodenum", "")]),
    ("Involvement of the duodenum cannot be excluded.", [("duodenum", "unc")]),
    ("Right-sided hydronephrosis and a 7 mm calculus at the right UVJ.", [("kidney_right", "")]),
    ("Degenerative changes of the lumbar spine, most pronounced at L4-L5 and L5-S1.",
     [("lumbar_vertebrae", ""), ("lumbar_vertebrae", ""), ("lumbar_vertebrae", ""),
      ("lumbar_vertebrae+vertebrae_S1", "")]),
    ("Sclerotic lesion in the T11 vertebral body and the left 9th rib, suspicious for metastasis.",
     [("thoracic_vertebrae", ""), ("rib_left", "")]),
    ("The appendix is normal. The terminal ileum and cecum are unremarkable.",
     [("cecum", "normal"), ("small_bowel", "normal"), ("cecum", "normal")]),
    ("The urinary bladder is partially distended; the prostate is enlarged, measuring 5.5 cm.",
     [("urinary_bladder", ""), ("prostate", "")]),
    ("No free fluid. No lymphadenopathy. The aorta is of normal caliber.", [("aorta", "")]),
    ("Mass in the liver, spleen unremarkable.", [("liver", ""), ("spleen", "normal")]),
    ("Liver metastases are excluded.", [("liver", "neg")]),
    ("The kidneys, adrenal glands and pancreas appear normal.",
     [("kidney_right+kidney_left", "normal"), ("adrenal_gland_right+adrenal_gland_left", "normal"),
      ("pancreas", "normal")]),
    ("Findings suggest tumor in the tail of the pancreas, possibly involving the splenic hilum.",
     [("pancreas_tail", ""), ("spleen", "unc")]),
    ("The mass is located at the hepatic flexure of the colon, not in the liver.",
     [("ascending_colon+transverse_colon", ""), ("liver", "neg")]),
    ("Renal cell carcinoma of the left kidney with tumour thrombus in the left renal vein and IVC.",
     [("kidney_right+kidney_left", ""), ("kidney_left", ""), ("kidney_left", ""), ("inferior_vena_cava", "")]),
    ("HCC in segment 8 with PVT.", [("liver", ""), ("liver_segment_8", ""), ("portal_vein_and_splenic_vein", "")]),
    ("LLL consolidation; RML and lingula clear.",
     [("lung_lower_lobe_left", ""), ("lung_middle_lobe_right", "normal"), ("lung_upper_lobe_left", "normal")]),
    ("The liver is normal in size but contains a 2 cm lesion in segment VII.",
     [("liver", ""), ("liver_segment_7", "")]),
    ("The pancreas is not enlarged.", [("pancreas", "neg")]),
    ("The mass does not invade the duodenum or the pancreatic head.",
     [("duodenum", "neg"), ("pancreas_head", "neg")]),
    ("There is no evidence of hepatic or splenic lesions.", [("liver", "neg"), ("spleen", "neg")]),
    ("The spleen is enlarged, measuring 16 cm, but the liver is unremarkable.",
     [("spleen", ""), ("liver", "normal")]),
    ("Cannot exclude early involvement of the left adrenal gland.", [("adrenal_gland_left", "unc")]),
    ("Suspected liver metastases. Pancreatic adenocarcinoma is favored.", [("liver", "unc"), ("pancreas", "unc")]),
    ("The esophagus, stomach and duodenum are unremarkable. Small hiatal hernia.",
     [("esophagus", "normal"), ("stomach", "normal"), ("duodenum", "normal"), ("esophagus_lower+stomach", "")]),
    ("Enhancing mass in the caecum with thickening of the ileocaecal valve; the terminal ileum is spared.",
     [("cecum", ""), ("cecum+small_bowel", ""), ("small_bowel", "neg")]),
    ("A left upper quadrant mass inseparable from the splenic flexure and the tail of the pancreas.",
     [("transverse_colon+descending_colon", ""), ("pancreas_tail", "")]),
    ("No focal hepatic lesion is identified, although a small splenic cyst is present.",
     [("liver", "neg"), ("spleen", "")]),
    ("Neither adrenal gland contains a nodule.", [("adrenal_gland_right+adrenal_gland_left", "neg")]),
    ("IVC filter in situ. Aorto-iliac atherosclerosis. The common iliac arteries are ectatic.",
     [("inferior_vena_cava", ""), ("aorta+iliac_artery", ""), ("iliac_artery", "")]),
    ("The gall-\nbladder wall is thickened; the GB is distended.", [("gallbladder", ""), ("gallbladder", "")]),
    ("Bilateral adrenal nodules, the largest on the left measuring 1.8 cm, likely adenomas.",
     [("adrenal_gland_right+adrenal_gland_left", "")]),
]


@pytest.mark.parametrize("text, want", REPORT_SENTENCES, ids=[s[:40] for s, _ in REPORT_SENTENCES])
def test_report_sentences(text, want):
    assert observed(text) == expected(*want)


def test_paper_cirrhosis_example_names_liver_then_spleen():
    text = ("cirrhosis of the liver is suspected and the imaging findings indicate splenomegaly and altered "
            "hepatic lobe proportions")
    assert observed(text) == expected(("liver", "unc"), ("liver", "unc"), ("spleen", ""), ("liver", ""))
    assert organs_named(text) == [5, 1]
    assert [m.surface for m in match_organs(text)] == ["cirrhosis", "liver", "splenomegaly", "hepatic lobe"]


def test_iir_prompt_resolves_to_pancreatic_head():
    mentions = match_organs("The question requires greater attention to pancreatic head.")
    assert [(m.label_ids, m.surface, m.negated) for m in mentions] == [((111,), "pancreatic head", False)]


def test_every_label_display_name_resolves_to_itself():
    """The IIR prompt names organs by display name; matching it must give that label back."""
    for lab in T:
        for text in (f"The question requires greater attention to {lab.display}.", lab.name):
            mentions = match_organs(text)
            assert len(mentions) == 1 and lab.id in mentions[0].label_ids, (lab.name, text)
            if lab.name != "kidney_cyst":  # 'renal cyst' also names the kidneys it sits in
                assert mentions[0].label_ids == (lab.id,), text


def test_colon_example_from_table_11():
    text = ("First, examine the right hemicolon, cecum, ascending colon, and hepatic flexure; no wall thickening or "
            "abnormal density is observed, indicating no definite mass or inflammatory change in the right hemicolon. "
            "Second, check the left hemicolon, transverse colon, and splenic flexure, descending colon, sigmoid colon, "
            "and rectum; again no abnormal thickening or abnormal density is found, supporting the absence of "
            "significant lesions in the left hemicolon. Third, evaluate colon-related internal structures and "
            "surrounding tissues; no pericolonic vascular abnormality is detected, and the liver, gallbladder, "
            "pancreas, spleen, kidneys, and pelvic structures show no colon-related significant lesion, enlarged "
            "lymph nodes, or free fluid. These findings collectively do not support tumor or active inflammatory "
            "changes. Overall, the imaging features do not suggest colorectal cancer or other qualifying pathology.")
    right = "cecum+ascending_colon+transverse_colon"
    left = "transverse_colon+descending_colon+sigmoid_colon"
    assert observed(text) == expected(
        (right, ""), ("cecum", ""), ("ascending_colon", ""), ("ascending_colon+transverse_colon", ""),
        (right, "neg"),
        (left, ""), ("transverse_colon", ""), ("transverse_colon+descending_colon", ""), ("descending_colon", ""),
        ("sigmoid_colon", ""), ("rectum", ""), (left, "neg"),
        ("colorectum", ""), ("colorectum", "neg"), ("liver", "neg"), ("gallbladder", "neg"), ("pancreas", "neg"),
        ("spleen", "neg"), ("kidney_right+kidney_left", "neg"), ("colorectum", "neg"), ("colorectum", "neg"),
    )


def test_flexures_are_colon_not_liver_or_spleen():
    for text, want in [("hepatic flexure", "ascending_colon+transverse_colon"),
                       ("Splenic flexure", "transverse_colon+descending_colon"),
                       ("right colic flexure", "ascending_colon+transverse_colon"),
                       ("the hepatic and splenic flexures", "ascending_colon+transverse_colon+descending_colon")]:
        mentions = match_organs(text)
        assert [m.label_ids for m in mentions] == [ids(want)], text
        assert {parent_or_self(i) for i in mentions[0].label_ids} == {T.by_name("colorectum").id}
    assert organs_named("Mass at the hepatic flexure; the liver and spleen are normal.") == [132, 133, 5, 1]


def test_brief_negation_examples():
    assert observed("No focal lesion in the liver or spleen.") == expected(("liver", "neg"), ("spleen", "neg"))
    assert observed("The liver shows a mass; no splenomegaly.") == expected(("liver", ""), ("spleen", "neg"))
    assert observed("without evidence of pancreatic involvement") == expected(("pancreas", "neg"))
    assert observed("unremarkable pancreas") == expected(("pancreas", "normal"))
    assert observed("The pancreas is unremarkable.") == expected(("pancreas", "normal"))
    m = match_organs("The pancreas is unremarkable.")[0]
    assert m.negated and m.normal and m.trigger == "is unremarkable"


def test_longest_match_and_word_boundaries():
    assert [m.surface for m in match_organs("pancreatic head and pancreatic tumour")] == ["pancreatic head",
                                                                                           "pancreatic"]
    assert observed("head of the pancreas; body and tail of the pancreas") == expected(
        ("pancreas_head", ""), ("pancreas_body+pancreas_tail", ""))
    # organ words inside other words are not organs
    assert observed("semicolon, delivery, tribute, relationship, ribbon, spinel, cardiac-free zone") == \
        expected(("heart", ""))
    assert observed("adrenal gallbladder") == expected(("adrenal_gland_right+adrenal_gland_left", ""),
                                                       ("gallbladder", ""))


def test_plurals_and_laterality():
    cases = [
        ("kidneys", "kidney_right+kidney_left", True), ("left kidney", "kidney_left", False),
        ("bilateral kidneys", "kidney_right+kidney_left", True), ("right adrenal gland", "adrenal_gland_right", False),
        ("adrenal glands", "adrenal_gland_right+adrenal_gland_left", True),
        ("the kidney", "kidney_right+kidney_left", False),
        ("lungs", "lung_upper_lobe_left+lung_lower_lobe_left+lung_upper_lobe_right+lung_middle_lobe_right+"
                  "lung_lower_lobe_right", True),
        ("left lung", "lung_upper_lobe_left+lung_lower_lobe_left", False),
        ("ribs", "rib_left+rib_right", True), ("right ribs", "rib_right", True), ("left 7th rib", "rib_left", False),
        ("7th left rib", "rib_left", False), ("bilateral renal cysts", "kidney_right+kidney_left+kidney_cyst", True),
        ("left renal cyst", "kidney_left+kidney_cyst", False), ("Rt kidney", "kidney_right", False),
        ("both adrenals", "adrenal_gland_right+adrenal_gland_left", True),
        ("right and left adrenal glands", "adrenal_gland_right+adrenal_gland_left", True),
        ("segments 6 and 7", "liver_segment_6+liver_segment_7", True),
    ]
    for text, want, plural in cases:
        mentions = match_organs(text)
        assert len(mentions) == 1, (text, mentions)
        assert mentions[0].label_ids == ids(want), text
        assert mentions[0].plural is plural, text


def test_liver_segments_lobes_and_segment_lists():
    for text, want in [("hepatic segment VII", "liver_segment_7"), ("Couinaud segment 7", "liver_segment_7"),
                       ("segment 7", "liver_segment_7"), ("segment VII", "liver_segment_7"),
                       ("segment IVb", "liver_segment_4"), ("segment 4a", "liver_segment_4"),
                       ("caudate lobe", "liver_segment_1"),
                       ("left lobe of the liver", "liver_segment_2+liver_segment_3+liver_segment_4"),
                       ("right hepatic lobe", "liver_segment_5+liver_segment_6+liver_segment_7+liver_segment_8"),
                       ("segments V-VIII", "liver_segment_5+liver_segment_6+liver_segment_7+liver_segment_8"),
                       ("segments 2 to 4", "liver_segment_2+liver_segment_3+liver_segment_4"),
                       ("hepatic segments II, III and IVa", "liver_segment_2+liver_segment_3+liver_segment_4")]:
        assert [m.label_ids for m in match_organs(text)] == [ids(want)], text
    # a measurement after a segment is not another segment
    assert observed("A lesion in segment 7, 2.3 cm.") == expected(("liver_segment_7", ""))


def test_context_dependent_abbreviations():
    # bare S7 counts as a liver segment only when the liver is named in this or the previous sentence
    assert observed("Lesion in S7.") == []
    assert observed("The liver is cirrhotic. A 1.5 cm lesion in S7 shows washout.") == expected(
        ("liver", ""), ("liver", ""), ("liver_segment_7", ""))
    assert observed("S6/7 lesion of the liver") == expected(("liver_segment_6+liver_segment_7", ""), ("liver", ""))
    # S1: caudate segment near the liver, the S1 vertebra near the spine, nothing alone
    assert observed("Liver lesion in S1.") == expected(("liver", ""), ("liver_segment_1", ""))
    assert observed("Sacralisation of L5 with S1.") == expected(("lumbar_vertebrae", ""), ("vertebrae_S1", ""))
    assert observed("Seen at S1.") == []
    # T1-T4 are TNM stages unless a vertebra is named in the same sentence
    assert observed("T3 tumour of the stomach, N1, M0.") == expected(("stomach", ""))
    assert observed("T12 and L1 vertebral bodies show compression. T2 tumour of the stomach.") == expected(
        ("thoracic_vertebrae", ""), ("lumbar_vertebrae", ""),
        ("vertebrae_S1+lumbar_vertebrae+thoracic_vertebrae+cervical_vertebrae", ""), ("stomach", ""))
    assert observed("T1-weighted images of the liver") == expected(("liver", ""))
    # bare "right lobe" / "fundus" / "tail" take the organ named nearby
    assert observed("The liver is enlarged; the right lobe contains a mass.")[1] == \
        (ids("liver_segment_5+liver_segment_6+liver_segment_7+liver_segment_8"), "")
    assert observed("Thyroid: nodule in the right lobe.") == expected(("thyroid_gland", ""), ("thyroid_gland", ""))
    assert observed("Mass in the right lobe.") == []
    assert observed("Gastric body and fundus: wall thickening.") == expected(("stomach_body", ""),
                                                                            ("stomach_fundus", ""))
    assert observed("The gallbladder fundus shows adenomyomatosis.") == expected(("gallbladder", ""))
    assert observed("Pancreas: 2 cm mass in the tail.") == expected(("pancreas", ""), ("pancreas_tail", ""))


def test_structured_report_with_headers_bullets_and_line_breaks():
    text = ("FINDINGS:\nLiver: Cirrhotic morphology with a 3.1 cm observation in segment 8.\n"
            "Gallbladder: Cholelithiasis without cholecystitis.\nPancreas: Unremarkable.\nSpleen: Normal.\n"
            "Adrenal glands: Unremarkable.\nKidneys: no hydronephrosis.\n"
            "IMPRESSION:\n1. Cirrhosis with segment 8 HCC.\n2. Splenomegaly; possible portal hypertension.")
    assert observed(text) == expected(
        ("liver", ""), ("liver", ""), ("liver_segment_8", ""),
        ("gallbladder", ""), ("gallbladder", ""), ("gallbladder", "neg"),
        ("pancreas", "normal"), ("spleen", "normal"), ("adrenal_gland_right+adrenal_gland_left", "normal"),
        ("kidney_right+kidney_left", "neg"), ("kidney_right+kidney_left", "neg"),
        ("liver", ""), ("liver_segment_8", ""), ("liver", ""), ("spleen", ""), ("portal_vein_and_splenic_vein", "unc"))
    # a hard-wrapped sentence keeps its negation across the line break; a new capitalised line does not
    assert observed("No focal lesion is seen in the liver\nor the spleen.") == expected(("liver", "neg"),
                                                                                       ("spleen", "neg"))
    assert observed("No ascites\nLiver with a 2 cm mass") == expected(("liver", ""))


def test_abbreviations_and_british_spellings():
    assert observed("HCC, PDAC, RCC, IVC, SVC, GEJ, LUL, CBD") == expected(
        ("liver", ""), ("pancreas", ""), ("kidney_right+kidney_left", ""), ("inferior_vena_cava", ""),
        ("superior_vena_cava", ""), ("esophagus_lower+stomach_cardia", ""), ("lung_upper_lobe_left", ""))
    assert observed("oesophagus, caecum, oesophageal, caecal") == expected(
        ("esophagus", ""), ("cecum", ""), ("esophagus", ""), ("cecum", ""))
    assert observed("hepato-renal space and splenorenal ligament") == expected(
        ("liver", ""), ("kidney_right+kidney_left", ""), ("spleen+kidney_left", ""))
    assert observed("the portal venous phase shows the portal vein") == expected(("portal_vein_and_splenic_vein", ""))


def test_organs_named_order_dedup_and_negated_filter():
    text = "No splenomegaly. Mass in the pancreatic tail abutting the splenic vein; the spleen and the liver are normal."
    assert organs_named(text) == [1, 113, 48, 5]
    assert organs_named(text, include_negated=False) == [113, 48]
    assert organs_named("") == [] and match_organs("") == []


def test_parent_or_self():
    assert parent_or_self(107) == 5 and parent_or_self(111) == 7 and parent_or_self(136) == 20
    assert parent_or_self(143) == 15 and parent_or_self(5) == 5 and parent_or_self(2) == 2
    with pytest.raises(KeyError):
        parent_or_self(99)


def test_mentions_are_frozen_with_exact_offsets_and_deterministic():
    text = "LIVER:\tsegment VII lesion; the Left Kidney and  right\nadrenal gland are normal."
    first = match_organs(text)
    assert first == match_organs(text)
    for m in first:
        assert text[m.start:m.end] == m.surface
    assert [m.surface for m in first] == ["LIVER", "segment VII", "Left Kidney", "right\nadrenal gland"]
    with pytest.raises(FrozenInstanceError):
        first[0].negated = True  # type: ignore[misc]


def test_bad_input_is_refused_clearly():
    with pytest.raises(TypeError, match="expects a str"):
        match_organs(None)  # type: ignore[arg-type]


def test_table_without_substructures_falls_back_to_parent_organs():
    organs_only = LabelTable(T.organs(), "organs_only")
    mentions = match_organs("Lesion in segment VII and the pancreatic head; right kidney normal.", organs_only)
    assert [m.label_ids for m in mentions] == [(5,), (7,), (2,)]


def test_a_table_with_its_own_display_names_gets_them_as_phrases():
    from inference.labels import Label

    renamed = [Label(lab.id, lab.name, "lien" if lab.name == "spleen" else lab.display, lab.colour, lab.group,
                     lab.parent, lab.totalseg_ids) for lab in T]
    lexicon = build_lexicon(LabelTable(renamed, "renamed"))
    assert [c.labels for c in lexicon.phrases["lien"]] == [("spleen",)]
    assert [c.labels for c in lexicon.phrases["spleen"]] == [("spleen",)]  # the shared vocabulary stays


def test_every_label_has_synonyms_and_every_synonym_names_known_labels():
    data = json.loads(SYNONYMS_FILE.read_text())
    named = {n for e in data["terms"] for n in e["labels"]}
    named |= {n for e in data["lateral"] for k in ("left", "right", "also") for n in e.get(k, [])}
    named |= {n for vm in data["value_maps"].values() for n in vm}
    assert {lab.name for lab in T} <= named
    assert named <= {lab.name for lab in T}


def test_broken_synonym_files_fail_with_the_file_and_the_problem(tmp_path):
    data = json.loads(SYNONYMS_FILE.read_text())
    data["terms"].append({"labels": ["no_such_organ"], "phrases": ["thing"]})
    bad = tmp_path / "synonyms.json"
    bad.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=r"synonyms\.json.*unknown label name 'no_such_organ'"):
        build_lexicon(path=bad)
    data["terms"][-1] = {"labels": ["spleen"], "phrases": ["liver"]}  # contradicts the liver entry
    bad.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="phrase 'liver'"):
        build_lexicon(path=bad)
    data["terms"][-1] = {"labels": ["spleen"], "phrases": ["spleen (of"]}
    bad.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="unclosed group"):
        build_lexicon(path=bad)
    bad.write_text("{ not json")
    with pytest.raises(ValueError, match="cannot read synonyms"):
        build_lexicon(path=bad)


def test_phrase_syntax_expansion_and_trie_longest_match():
    assert expand("head of (the) pancreas") == ["head of the pancreas", "head of pancreas"]
    assert expand("{esophagus|oesophagus} wall") == ["esophagus wall", "oesophagus wall"]
    assert expand("<n> rib", {"n": ["1st", "2nd"]}) == ["1st rib", "2nd rib"]
    with pytest.raises(PhraseSyntaxError):
        expand("<missing> rib")
    import re
    rx = re.compile(trie_regex(["pancreatic", "pancreatic head", "gall bladder", "t12-l1"]), re.I)
    assert [m.group() for m in rx.finditer("Pancreatic head, pancreatics, gall-bladder, T12 - L1")] == \
        ["Pancreatic head", "gall-bladder", "T12 - L1"]
