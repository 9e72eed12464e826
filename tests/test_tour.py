"""docs/tour.ipynb runs from top to bottom: the shipped checkpoints, then an imported model (a
random-init ViTMAE that transformers builds, no network)."""

from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent


def test_the_tour_notebook_runs_and_shows_what_it_says():
    notebook = nbformat.read(ROOT / "docs" / "tour.ipynb", as_version=4)
    assert not any(cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code"), \
        "the committed notebook carries no outputs"
    NotebookClient(notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}).execute()
    text = "\n".join(o.get("text", "") for c in notebook.cells if c.cell_type == "code" for o in c.outputs)
    images = [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs if "image/png" in o.get("data", {})]
    assert "mae | 28 x 28 x 1 | patches: 49 | mask ratio: 0.75" in text
    assert "mean squared error on the hidden patches: MAE" in text
    assert "format='transformers-5'" in text and "224 x 224 x 3 | patches: 196" in text
    assert "astronaut" in text and text.count("layer   a_VM") == 2
    assert "MTO terms {'ent':" in text and "config.json keeps it: True" in text  # add_mto on a transformers model
    assert len(images) == 2  # the shipped model's reconstructions and the imported model's
