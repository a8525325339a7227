"""Rewrite the project's top-level dataset_infos.json from the builder's _info() (run after changing a config):

    python -m scripts.write_dataset_infos
"""

from pathlib import Path

from svitpipe.publish.card import project_infos, write_dataset_infos

REPO_ROOT = Path(__file__).resolve().parent.parent

if __name__ == "__main__":
    write_dataset_infos(str(REPO_ROOT / "dataset_infos.json"), project_infos())
    print("wrote dataset_infos.json")
