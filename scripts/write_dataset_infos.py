"""Rewrite the project's top-level dataset_infos.json from the builder's _info() (run after changing a config)."""

import os
import sys

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO_ROOT)

from svitpipe.dataset_card import project_infos, write_dataset_infos  # noqa: E402

if __name__ == "__main__":
    write_dataset_infos(os.path.join(REPO_ROOT, "dataset_infos.json"), project_infos())
    print("wrote dataset_infos.json")
