"""logic/labels.py: what a checkpoint is, in words; pairs and baselines."""

from pathlib import Path

from logic.labels import (
    baseline_for,
    describe_run,
    mask_heads,
    mask_site,
    method_names,
    pair_problem,
    short_label,
)

from ..conftest import small_config

CHECKPOINTS = Path(__file__).resolve().parents[2] / "checkpoints"


def test_shipped_checkpoints_are_told_apart_by_their_config():
    names = [n for method in method_names() for n in (method, f"{method}-mto")]
    labels = {name: describe_run(CHECKPOINTS / name).label for name in names}
    assert labels == {"simmim": "SimMIM (baseline)", "simmim-mto": "SimMIM + MTO",
                      "conmim": "ConMIM (baseline)", "conmim-mto": "ConMIM + MTO",
                      "mae": "MAE (baseline)", "mae-mto": "MAE + MTO",
                      "bootmae": "BootMAE (baseline)", "bootmae-mto": "BootMAE + MTO"}


def test_pages_name_the_layers_that_see_mask_tokens():
    sites = {m: mask_site(small_config(m, "model.num_heads=4").model) for m in method_names()}
    assert sites == {"simmim": "encoder", "conmim": "encoder", "mae": "MAE decoder",
                     "bootmae": "BootMAE pixel decoder"}
    assert {m: mask_heads(small_config(m, "model.num_heads=4").model) for m in method_names()} == \
        {"simmim": 4, "conmim": 4, "mae": 2, "bootmae": 2}


def test_run_folder_and_broken_folder(tmp_path):
    run = tmp_path / "run"
    (run / "step-00000004").mkdir(parents=True)
    (run / "config.json").write_text(small_config("mae").to_json())
    assert describe_run(run).label == "MAE (baseline)"
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "config.json").write_text("not json")
    assert describe_run(tmp_path / "broken").method == ""


def test_a_cross_method_pair_is_refused():
    simmim, mae = small_config("simmim"), small_config("mae-mto")
    assert pair_problem(simmim, small_config("simmim-mto")) is None
    problem = pair_problem(simmim, mae)
    assert problem and "SimMIM" in problem and "MAE" in problem and "same method" in problem
    problem = pair_problem(small_config("conmim"), small_config("simmim-mto"))
    assert problem and "ConMIM" in problem and "SimMIM" in problem
    assert pair_problem(small_config("bootmae"), small_config("bootmae-mto")) is None


def test_each_run_is_scored_against_a_baseline_of_its_own_method():
    infos = {k: describe_run(CHECKPOINTS / k.split("/")[1]) for k in
             ("checkpoints/mae", "checkpoints/mae-mto", "checkpoints/simmim", "checkpoints/simmim-mto")}
    assert baseline_for("checkpoints/simmim-mto", infos) == "checkpoints/simmim"
    assert baseline_for("checkpoints/mae-mto", infos) == "checkpoints/mae"
    assert baseline_for("checkpoints/simmim", infos) is None
    del infos["checkpoints/simmim"]
    assert baseline_for("checkpoints/simmim-mto", infos) is None  # never the MAE baseline
    simmim, mto = describe_run(CHECKPOINTS / "simmim"), describe_run(CHECKPOINTS / "simmim-mto")
    runs = {"runs/app-1-simmim": simmim, "runs/app-2-simmim": simmim, "runs/app-2-simmim-mto": mto}
    assert baseline_for("runs/app-2-simmim-mto", runs) == "runs/app-2-simmim"


def test_short_labels():
    assert short_label("checkpoints/simmim-mto") == "simmim-mto"
    long = short_label("runs/app-20261125-081500-simmim-mto-with-a-long-name")
    assert len(long) == 28 and "…" in long and long.endswith("long-name")


def test_train_page_runs_are_labelled_so_they_fit_the_sidebar():
    from logic.labels import short_label

    assert short_label("runs/app-20261202-004512-simmim-mto") == "app 00:45:12 simmim-mto"
    assert len(f"{short_label('runs/app-20261202-004512-bootmae-mto')} · BootMAE + MTO") <= 40
    assert short_label("checkpoints/mae") == "mae"


def test_partners_share_the_method_and_input_and_fall_back_to_the_twin_or_none():
    from logic.labels import RunInfo, partner_choice, partners

    infos = {"checkpoints/mae": RunInfo("mae", False, (28, 4, 1)), "checkpoints/mae-mto": RunInfo("mae", True, (28, 4, 1)),
             "runs/big": RunInfo("mae", False, (224, 16, 3)), "runs/big-mto": RunInfo("mae", True, (224, 16, 3)),
             "runs/sim": RunInfo("simmim", True, (224, 16, 3)), "runs/bad": RunInfo("", False)}
    labels = list(infos)
    assert partners("runs/big", infos, labels) == ["runs/big-mto"]
    assert partners("checkpoints/mae-mto", infos, labels) == ["checkpoints/mae"]
    assert partner_choice("runs/big", ["runs/big-mto", "none"], "checkpoints/mae-mto", "none") == "runs/big-mto"
    assert partner_choice("runs/other", ["runs/x", "none"], "checkpoints/mae-mto", "none") == "none"
    assert partner_choice("runs/big", ["runs/big-mto", "runs/x", "none"], "runs/x", "none") == "runs/x"


def test_seen_label_says_whether_the_checkpoints_trained_on_a_photo():
    from logic.labels import seen_label

    assert seen_label("astronaut", [("a", False), ("b", False)]) == "astronaut · never seen in training"
    assert seen_label("camera", [("a", True)]) == "camera · seen in training"
    assert seen_label("camera", [("a", True), ("b", False)]) == "camera · seen in training by a only"
    assert seen_label("camera", [("a", None)]) == "camera"  # not a photo-crop run: nothing is said
