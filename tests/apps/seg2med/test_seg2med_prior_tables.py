"""The prior tables against the seg2med authors' own numbers, the class mapping, tissue maps and body contours.

The authors' numbers below were read from GitHub musetee/frankenstein at commit a85efc8 (unchanged since fd601de):
``seg2med_app/simulation/params_ct.csv`` (Hounsfield units), ``seg2med_app/simulation/params_mr.csv`` (T1, T2,
rho), and the signal values their notebook ``tutorial2_dataprocessing.ipynb`` prints from their sequence equations.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from medfusion.apps.seg2med import prior_tables as pt
from medfusion.apps.seg2med.prior import make_prior
from medfusion.apps.seg2med.tissues import class_names
from medfusion.errors import InputError

TOTAL = {name: label for label, name in class_names("total").items()}
TOTAL_MR = {name: label for label, name in class_names("total_mr").items()}

#: params_ct.csv rows (class → HU); the first five are where medfusion's earlier table differed
AUTHORS_CT = {"sacrum": 700, "clavicula_left": 1000, "skull": 3000, "colon": 50, "superior_vena_cava": 10,
              "portal_vein_and_splenic_vein": 10, "iliac_vena_right": 10, "aorta": 50, "liver": 50, "spleen": 40,
              "kidney_left": 30, "gallbladder": -5, "lung_lower_lobe_right": -800, "trachea": -1000,
              "vertebrae_L1": 300, "rib_left_3": 700, "hip_right": 700, "femur_left": 700, "gluteus_maximus_left": 60,
              "brain": 45, "sternum": 300, "costal_cartilages": 40, "spinal_cord": 40, "kidney_cyst_right": 10,
              "urinary_bladder": 20, "esophagus": 30, "small_bowel": 40, "thyroid_gland": 50}
#: params_ct.csv rows 0 and 201–203, and the background the code paints outside the body
AUTHORS_CT_SPECIAL = {"body": 0, "subcutaneous_fat": -100, "torso_fat": -90, "skeletal_muscle": 55, "air": -1000}
#: params_mr.csv (T1 ms, T2 ms, rho) of a few classes
AUTHORS_MR = {"spleen": (1328, 61, 90), "liver": (809, 34, 90), "kidney_left": (1142, 154, 90),
              "vertebrae": (400, 70, 95), "gluteus_maximus_left": (1232.9, 37.2, 80), "aorta": (1300, 100, 95)}


def _lut(modality, task="total", table="seg2med"):
    return pt.prior_lookup(modality, task, table)


def test_ct_values_are_the_authors():
    look = _lut("ct")
    assert {name: float(look.labels[TOTAL[name]]) for name in AUTHORS_CT} == AUTHORS_CT
    special = {"body": look.body, "air": look.background,
               **dict(zip(("subcutaneous_fat", "torso_fat", "skeletal_muscle"), look.tissues[1:].tolist()))}
    assert special == AUTHORS_CT_SPECIAL


def test_the_medfusion_table_is_a_named_alternative():
    """The earlier table stays available by name, with its own values (sacrum 300, skull 1000, colon 0)."""
    look = _lut("ct", table="medfusion")
    assert [look.labels[TOTAL[n]] for n in ("sacrum", "skull", "colon")] == [300, 1000, 0]
    with pytest.raises(InputError, match="unknown prior table"):
        pt.prior_lookup("ct", "total", "paper")


def _gre(t1, t2, rho, te=4.0, tr=7.0, flip=10.0):
    a = math.radians(flip)
    e1 = math.exp(-tr / t1)
    return rho * math.sin(a) * (1 - e1) / (1 - math.cos(a) * e1) * math.exp(-te / t2)


@pytest.mark.parametrize("name", sorted(AUTHORS_MR))
def test_mr_values_follow_the_authors_sequences(name):
    """T1: spoiled gradient echo TE 4 / TR 7 ms / 10°; T2: (1 − e^(−TR/T1)) e^(−TE/T2), TE 150 / TR 2000 ms."""
    t1, t2, rho = AUTHORS_MR[name]
    got_t1 = _lut("t1", "total_mr").labels[TOTAL_MR[name]]
    got_t2 = _lut("t2", "total_mr").labels[TOTAL_MR[name]]
    assert got_t1 == pytest.approx(_gre(t1, t2, rho), rel=1e-5)
    assert got_t2 == pytest.approx(rho * (1 - math.exp(-2000 / t1)) * math.exp(-150 / t2), rel=1e-5)


def test_mr_tissue_values_match_the_authors_notebook():
    """Their notebook prints calculate_signal_T2_SPACE(275, 90, 95) = 17.93 (subcutaneous fat), (300, 80, 90) =
    13.78 (torso fat), (1142, 45, 80) = 2.359 (skeletal muscle)."""
    fat, torso, muscle = _lut("t2").tissues[1:]
    assert (round(float(fat), 2), round(float(torso), 2), round(float(muscle), 3)) == (17.93, 13.78, 2.359)


def test_mr_prior_windows_hold_the_authors_largest_values():
    """Their MR prior windows are [0, the table's largest value as a whole number]: T1 9, T2 28, opposed 10."""
    for modality, top in (("t1", 9), ("t2", 28), ("t1_opposed", 10)):
        look = _lut(modality, "total_mr")
        largest = max(float(look.labels[1:].max()), float(look.tissues.max()), look.body)
        assert math.floor(largest) == top and pt.prior_window(modality) == (0.0, float(top))
    assert pt.prior_window("ct") is None and pt.prior_window("t1", "medfusion") is None


def test_mr_classes_are_read_by_name_not_by_the_old_numbers():
    """The authors' row 36 is hip_left in an older total_mr map; today label 36 is femur_left: bone either way, but
    label 40 (today gluteus_maximus_left, their row 40 gluteus_medius_left) must be muscle, and label 32 (today
    scapula_left, their row 32 fibula) bone."""
    look = _lut("t1", "total_mr")
    bone, muscle = _gre(400, 70, 95), _gre(1232.9, 37.2, 80)
    assert look.labels[TOTAL_MR["femur_left"]] == pytest.approx(bone, rel=1e-5)
    assert look.labels[TOTAL_MR["scapula_left"]] == pytest.approx(bone, rel=1e-5)
    assert look.labels[TOTAL_MR["gluteus_maximus_left"]] == pytest.approx(muscle, rel=1e-5)


def test_total_maps_reach_the_mr_table_through_the_class_mapping():
    lab = np.array([[[TOTAL["lung_upper_lobe_left"], TOTAL["vertebrae_L3"], TOTAL["rib_left_5"], TOTAL["liver"]]]])
    assert pt.map_labels(lab, "total", "total_mr").tolist() == [[[TOTAL_MR["lung_left"], TOTAL_MR["vertebrae"], 0,
                                                                  TOTAL_MR["liver"]]]]
    t1_total, t1_mr = _lut("t1"), _lut("t1", "total_mr")
    assert t1_total.labels[TOTAL["vertebrae_L3"]] == t1_mr.labels[TOTAL_MR["vertebrae"]]
    assert t1_total.labels[TOTAL["rib_left_5"]] == t1_total.body  # no rib in total_mr: unlabelled body


def test_mapping_round_trip_and_ct_values_of_mr_maps():
    mr = np.array(sorted(TOTAL_MR.values()))
    back = pt.map_labels(pt.map_labels(mr, "total_mr", "total"), "total", "total_mr")
    lost = {class_names("total_mr")[int(k)] for k in mr[back != mr]}
    assert lost == {"intervertebral_discs"}  # the one total_mr class that total lacks
    ct_mr = _lut("ct", "total_mr")
    assert ct_mr.labels[TOTAL_MR["lung_right"]] == -800 and ct_mr.labels[TOTAL_MR["vertebrae"]] == 300
    assert ct_mr.labels[TOTAL_MR["intervertebral_discs"]] == ct_mr.body


def test_every_class_of_every_task_has_a_finite_value():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for task in ("total", "total_mr"):
            for modality in ("ct", "t1", "t1_opposed", "t2"):
                look = _lut(modality, task)
                assert look.labels.shape == (max(class_names(task)) + 1,) and np.all(np.isfinite(look.labels))


# ---- painting: body, tissues, organs --------------------------------------------------------------------------

def _case():
    lab = np.zeros((12, 10, 3), np.int64)
    lab[4:7, 4:7, :] = TOTAL["liver"]
    tissues = np.zeros_like(lab)
    tissues[2:10, 2:8, :] = 2  # torso fat, partly under the liver
    tissues[1, 1:9, :] = 1  # subcutaneous fat
    body = np.zeros(lab.shape, bool)
    body[1:11, 1:9, :] = True
    return lab, tissues, body


def test_organs_paint_over_tissues_over_the_body():
    lab, tissues, body = _case()
    prior = make_prior(lab, "ct", body=body, tissues=tissues)
    assert np.all(prior[lab > 0] == 50)  # liver wins over the torso fat beneath it
    assert np.all(prior[(lab == 0) & (tissues == 2)] == -90) and np.all(prior[tissues == 1] == -100)
    assert np.all(prior[body & (lab == 0) & (tissues == 0)] == 0) and np.all(prior[~body] == -1000)
    without = make_prior(lab, "ct", body=body)
    assert np.all(without[body & (lab == 0)] == 0)  # no tissue map: the body value


def test_bad_tissue_maps_are_refused():
    lab, tissues, body = _case()
    with pytest.raises(InputError, match="tissue_types labels 0–3"):
        make_prior(lab, "ct", body=body, tissues=tissues + 3)
    with pytest.raises(InputError, match="differs from the label map"):
        make_prior(lab, "ct", body=body, tissues=tissues[:, :, :2])


def test_body_from_labels_is_tighter_with_a_tissue_map_and_warns_where_asked():
    lab = np.zeros((60, 60, 2), np.int64)
    lab[25:35, 25:35, :] = TOTAL["liver"]
    tissues = np.zeros_like(lab)
    tissues[20:40, 20:40, :] = 2
    with pytest.warns(UserWarning, match="no body mask given.*15 mm"):
        organs_only = make_prior(lab, "ct", spacing=(1.0, 1.0, 1.0), warn_body=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning unless asked
        with_tissues = make_prior(lab, "ct", tissues=tissues, spacing=(1.0, 1.0, 1.0))
    body_a, body_b = organs_only > -1000, with_tissues > -1000
    assert body_a[49, 30].all() and not body_a[50, 30].any()  # 15 mm beyond the liver's last row (34)
    assert body_b[41, 30].all() and not body_b[42, 30].any()  # 2 mm beyond the tissues' last row (39)


def test_new_models_record_the_authors_table_and_old_checkpoints_read_as_medfusion():
    from medfusion.apps.seg2med.model import Seg2MedModel

    m = Seg2MedModel.create({"channels": [8, 8], "norm_num_groups": 4, "num_head_channels": 4}, dims=2,
                            tasks=[("prior", "t2")])
    assert m.prior_table == "seg2med" and m.prior_window("t2") == (0.0, 28.0) and m.prior_window("ct") == m.window("ct")
    del m.preprocessing["prior_table"], m.preprocessing["prior_windows"]
    assert m.prior_table == "medfusion" and m.prior_window("t2") == m.window("t2")
