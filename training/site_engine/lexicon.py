"""Report vocabulary of the rule extractor: attribute terms mapped to the knowledge graph's values
(RadLex-style descriptors -> resources/knowledge_graph.json "attributes"), sizes, counts, hedges,
lymph nodes, metastases and pathology names. Organ and sub-region names are not here: they come
from the organ matcher (resources/labels/synonyms.json), negation of organs from its scanner.

Each table is (value, regex); the first value whose regex matches wins where values exclude each
other (density, shape, boundary); "others" collects every match.
"""
from __future__ import annotations

import re

DENSITY = (
    ("isodense", r"iso[- ]?(?:dense|attenuating|attenuation|enhancing)"),
    ("mixed", r"mixed[- ](?:density|attenuation|enhancement)|heterogeneous(?:ly)?(?:[- ](?:enhancing|attenuating|attenuation|density|enhancement))?|mixed-density"),
    ("hypodense", r"hypo[- ]?(?:dense|density|attenuating|attenuation|enhancing|enhancement|vascular)|low[- ](?:attenuation|attenuating|density)"),
    ("hyperdense", r"hyper[- ]?(?:dense|density|attenuating|attenuation|enhancing|enhancement|vascular)|high[- ](?:attenuation|density)|avidly[- ]enhancing|arterially[- ]enhancing|brightly[- ]enhancing"),
)
SHAPE = (
    ("lobulated", r"(?:multi)?lobulated|lobular|lobed"),
    ("irregular", r"irregular(?:ly)?(?:[- ]shaped)?(?!\s+(?:\w+\s+)?(?:margins?|borders?|edges?|contours?|outlines?))|spiculated(?!\s+margins?)|"
                  r"infiltrative(?:[- ]appearing)?\s+(?:mass|lesion)"),
    ("oval", r"oval|ovoid|elliptical|ovular"),
    ("round", r"round(?:ed)?|spherical|circular"),
)
BOUNDARY = (
    ("ill-defined", r"ill[- ]?(?:defined|circumscribed|demarcated|marginated)|poorly[- ](?:defined|circumscribed|marginated|demarcated)|"
                    r"not\s+well[- ](?:defined|circumscribed)|indistinct|infiltrative|infiltrating|blurred|"
                    r"irregular\s+(?:\w+\s+)?(?:margins?|borders?|edges?|contours?|outlines?)|spiculated\s+margins?|unclear\s+margins?"),
    ("well-defined", r"well[- ]?(?:defined|circumscribed|demarcated|marginated)|sharply[- ](?:defined|marginated|demarcated|circumscribed)|"
                     r"(?<!ill[- ])circumscribed|sharp\s+(?:margins?|borders?)|clear\s+(?:margins?|borders?)|smooth\s+(?:margins?|borders?|outer margins?)|"
                     r"distinct\s+(?:margins?|borders?)|(?:clearly|sharply)\s+delineated"),
)
OTHERS = (
    ("central necrosis", r"(?:central\s+)?necros[ie]s|necrotic(?:\s+cent(?:re|er))?"),
    ("calcification", r"calcif\w*"),
    ("fluid attenuation", r"(?:fluid|water)[- ](?:attenuation|density)|near[- ]water\s+attenuation|simple\s+fluid"),
    ("rim enhancement", r"(?:thin\s+)?rim[- ]?enhanc\w*|peripheral(?:\s+rim)?\s+enhancement|ring[- ]enhanc\w*|enhancing\s+rim"),
    ("pancreatic duct dilatation", r"(?:main\s+)?(?:pancreatic\s+)?duct(?:al)?\s+dilat\w*|dilat\w*\s+(?:of\s+the\s+)?(?:main\s+)?pancreatic\s+duct|"
                                   r"dilated\s+(?:main\s+)?(?:pancreatic\s+)?duct|double[- ]duct|upstream\s+ductal\s+dilat\w*|\bMPD\s+dilat\w*|"
                                   r"(?:main\s+|upstream\s+)?(?:pancreatic\s+)?duct(?:\s+[\w-]+){0,3}\s+(?:is|was|appears)\s+dilated|"
                                   r"dilatation\s+of\s+the\s+(?:\w+\s+){0,2}duct|\bWirsung\w*\s+(?:is\s+)?dilat\w*"),
    ("wall thickening", r"wall\s+thickening|(?:wall|mural)\s+thickened|thickening\s+of\s+the\s+(?:\w+\s+){0,2}wall|thickened\s+(?:\w+\s+)?wall|"
                        r"mural\s+thickening|circumferential\s+thickening|(?:focal|asymmetric|irregular)\s+thickening"),
)
VESSEL = (r"(?:encas\w+|invad\w+|invasion\s+of|abut\w+|involv\w+|occlu\w+|contact\s+with|thrombus\s+(?:in|of))\s+(?:of\s+)?(?:the\s+)?"
          r"(?:main\s+|right\s+|left\s+)?(?:portal\s+vein|PV|SMA|SMV|superior\s+mesenteric\s+(?:artery|vein)|c[o]?eliac(?:\s+(?:axis|trunk))?|"
          r"(?:common\s+)?hepatic\s+(?:artery|veins?)|splenic\s+(?:artery|vein)|IVC|inferior\s+vena\s+cava|aorta)|vascular\s+invasion|"
          r"tumou?r\s+thrombus|vascular\s+encasement")

LESION_NOUN = (r"lesions?|mass(?:es)?|tumou?rs?|nodules?|foci|focus|cysts?|polyps?|ha?emangiomas?|metastas[ie]s|"
               r"neoplasms?|carcinomas?|deposits?|hypodensit(?:y|ies)|thickening|growths?|malignanc(?:y|ies)")
NODE = r"lymph[- ]?nodes?|lymphadenopath\w*|adenopathy|(?<!\w)nodes?(?!\w)|\bLNs?\b|\bLAD\b"
NODE_POSITIVE = r"enlarged|pathologic\w*|suspicious|metastatic|malignant|bulky|necrotic|prominent|positive|lymphadenopath\w*|adenopathy|involved"
NODE_NEGATIVE = (r"subcentimet\w*|sub-centimet\w*|small|non-?enlarged|not\s+enlarged|normal[- ]sized|reactive|shotty|"
                 r"\bnone\s+(?:(?:is|are|were)\s+)?(?:enlarged|pathologic\w*|suspicious)|unremarkable|within\s+normal\s+limits")
METASTASIS = r"metasta\w*|secondar(?:y|ies)|deposits?"
DISTANT_NEGATED = (r"no\s+(?:evidence\s+of\s+|signs?\s+of\s+|definite\s+)?(?:[\w-]+,?\s+(?:(?:or|and|nor)\s+)?){0,4}?(?:metastas[ie]s|mets|metastatic\s+disease|"
                   r"(?:distant|extra-?hepatic)\s+(?:spread|disease))|"
                   r"without\s+(?:evidence\s+of\s+)?(?:distant\s+)?metasta\w*|(?:distant\s+)?metastas[ie]s\s+(?:are|is)\s+(?:not\s+seen|absent|excluded)")
HEDGE = (r"cannot\s+(?:be\s+)?(?:exclude[d]?|rule[d]?\s+out)|can\s+not\s+(?:be\s+)?(?:exclude[d]?|rule[d]?\s+out)|"
         r"cannot\s+be\s+excluded|not\s+excluded")  # about existence wherever they stand
HEDGE_BEFORE = r"\bpossible\b|\bpossibly\b|questionabl[ey]|question\s+of|equivocal|\?"  # only before the lesion noun
NODES_NEGATED = (r"no\s+extra-?hepatic\s+disease|\bno\s+(?:evidence\s+of\s+)?(?:[\w-]+\s+(?:or|and)\s+)?nodal\b|"
                 r"negative\s+for\s+(?:[\w-]+\s+(?:or|and)\s+)?nodal\b")
NEGATION_BEFORE = (r"\b(?:no|without|not|absence\s+of|negative\s+for|free\s+of|nor|neither|lack\s+of|no\s+evidence\s+of|"
                   r"no\s+signs?\s+of|rules?\s+out|ruled\s+out)\b")
NEGATION_AFTER = (r"\b(?:is|are|was|were)?\s*(?:not\s+(?:seen|identified|demonstrated|visualized|present|detected|evident)|absent|excluded|ruled\s+out)\b")
CLAUSE_BREAK = (r"\bbut\b|\bhowever\b|\bwith\b|\bwhich\b|\bwhereas\b|\bwhile\b|;|,\s*(?:and\s+)?(?:a|an|the)\b|"
                r"\b(?:possibly|likely|probably|consistent\s+with|compatible\s+with|suggest\w*|represent\w*)\b")

COUNT_WORDS = {"a": 1, "an": 1, "one": 1, "single": 1, "solitary": 1, "unifocal": 1, "two": 2, "three": 3, "four": 4,
               "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9, "ten": 10, "twin": 2, "both": 2}
MANY_WORDS = ("multiple", "several", "numerous", "multifocal", "innumerable", "few", "some", "bilobar")
COUNT = r"\b(?:\d+|" + "|".join(sorted(list(COUNT_WORDS) + list(MANY_WORDS), key=len, reverse=True)) + r")\b"

NUM = r"\d+(?:[.,]\d+)?"
SIZE = re.compile(rf"(?P<a>{NUM})\s*(?P<ua>cm|mm)?(?:\s*(?:x|×|\*|by)\s*(?P<b>{NUM})\s*(?P<ub>cm|mm)?)?"
                  rf"(?:\s*(?:x|×|\*|by)\s*(?P<c>{NUM})\s*(?P<uc>cm|mm)?)?(?!\w)", re.IGNORECASE)
SHORT_AXIS = re.compile(r"short[- ]axis(?:\s+(?:diameter|dimension|measurement))?(?:\s+(?:of|up\s+to|measuring|is|=|:))*\s*$"
                        r"|\(\s*short[- ]axis", re.IGNORECASE)
# a size the report compares against ("now 2.9 cm (previously 2.1 cm)", "grown from 19 mm to 31 mm"): not the lesion's size
PRIOR_SIZE = re.compile(r"(?:previously|prior(?:ly)?|formerly|from|(?:compared|versus|vs\.?)(?:\s+(?:with|to))?)\s*$", re.IGNORECASE)
SHORT_AXIS_AFTER = re.compile(r"^\s*(?:in\s+)?short[- ]axis", re.IGNORECASE)

# pathology name (knowledge graph key) -> phrases; generic words resolve through the organ (PATHOLOGY_GENERIC)
PATHOLOGY = (
    ("hepatocellular_carcinoma", r"hepatocellular\s+carcinoma|\bHCC\b|hepatoma|primary\s+(?:malignant\s+)?liver\s+(?:tumou?r|cancer|malignancy)|LI-?RADS\s*(?:5|M)"),
    ("liver_hemangioma", r"ha?emangiomas?|benign\s+vascular\s+liver\s+lesion"),
    ("liver_cyst", r"(?:simple\s+|hepatic\s+|liver\s+|benign\s+)cysts?\b|benign\s+cystic\s+liver\s+lesion"),
    ("serous_cystadenoma", r"serous\s+cyst(?:adenoma|ic\s+neoplasm)|microcystic\s+(?:adenoma|serous)|benign\s+cystic\s+pancreatic\s+neoplasm"),
    ("pancreatic_neuroendocrine_tumor", r"neuroendocrine|\bp?NETs?\b|islet\s+cell|hypervascular\s+solid\s+pancreatic\s+tumou?r"),
    ("pancreatic_ductal_adenocarcinoma", r"ductal\s+adenocarcinoma|\bPDAC\b|pancreatic\s+(?:adeno)?carcinoma|pancreatic\s+cancer|carcinoma\s+of\s+the\s+pancreas|"
                                         r"infiltrative\s+malignant\s+pancreatic\s+tumou?r"),
    ("gastrointestinal_stromal_tumor", r"\bGISTs?\b|(?:gastro[- ]?intestinal\s+)?stromal\s+tumou?rs?|mesenchymal\s+gastric\s+tumou?r"),
    ("gastric_adenocarcinoma", r"gastric\s+(?:adeno)?carcinoma|gastric\s+cancer|carcinoma\s+of\s+the\s+stomach|linitis\s+plastica|malignant\s+gastric\s+wall\s+tumou?r"),
    ("adenomatous_polyp", r"adenomatous\s+polyps?|(?:tubular|villous|tubulovillous)\s+adenoma|\bpolyps?\b|benign\s+mucosal\s+colon\s+polyp"),
    ("colorectal_adenocarcinoma", r"colo(?:rectal|nic|n)\s+(?:adeno)?carcinoma|colo(?:rectal|n)\s+cancer|rectal\s+(?:adeno)?carcinoma|rectal\s+cancer|"
                                  r"(?:sigmoid|cecal|caecal)\s+(?:adeno)?carcinoma|\bCRC\b|malignant\s+colon\s+wall\s+tumou?r"),
    ("esophageal_leiomyoma", r"leiomyomas?|benign\s+esophageal\s+submucosal\s+tumou?r"),
    ("esophageal_squamous_cell_carcinoma", r"squamous\s+cell\s+carcinoma|\b(?:E)?SCC\b|o?esophageal\s+(?:carcinoma|cancer)|malignant\s+esophageal\s+wall\s+tumou?r"),
)
PATHOLOGY_GENERIC = r"adenocarcinoma|carcinoma|cancer|malignan\w+|neoplasm"
# a diagnosis about lesions already described ("Findings are consistent with multifocal HCC"), not a new lesion
INTERPRETATION = (r"(?:consistent|compatible|in\s+keeping)\s+with|suggestive\s+of|suspicious\s+for|concerning\s+for|"
                  r"diagnostic\s+of|characteristic\s+of|typical\s+(?:of|for)|represent\w*|favou?r\w*")
# a node size given as a threshold: "five nodes measure more than 1 cm" (at least that size)
AT_LEAST = r"(?:more|greater|larger|bigger)\s+than|over|exceeding|above|at\s+least|>=?|≥"

# stage tokens: "pT3 N1 M0", "T3N1M0", "ypT2", "T4a"
STAGE = re.compile(r"(?<![A-Za-z])(?:[cpy]|yp|yc)?(?P<axis>[TNM])(?P<value>[0-4]|is|x|X)(?P<sub>[a-d]?)(?![0-9])")


def compile_table(table) -> tuple[tuple[str, re.Pattern], ...]:
    return tuple((value, re.compile(rf"(?<![\w-])(?:{rx})(?![\w-])", re.IGNORECASE)) for value, rx in table)
