"""GGUF checkpoints: one model file from the llama.cpp world, often quantised (e.g.
`SmolLM2-135M-Instruct.Q4_1.gguf`), which transformers reads itself, dequantised to fp32
(`from_pretrained(folder, gguf_file=NAME)`, with the `gguf` package installed).

Reading a GGUF file takes seconds to tens of seconds (18 s for SmolLM2-135M on a 2-core CPU:
the tensors are dequantised and the tokenizer is rebuilt from the file's vocabulary), so each
file is read once and written as a plain Hugging Face folder (config, fp32 safetensors,
tokenizer) under the Hugging Face cache, named by the file's hash; every later load reads the
folder (2.2 s). The run's `checkpoint_revision` is that hash: which weights trained.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import sys
from pathlib import Path

import torch
from huggingface_hub import constants
from transformers import AutoModelForCausalLM, AutoTokenizer

from bench.errors import BenchError, first_line

INSTALL = "pip install -e '.[decoders]' (the gguf package)"


def file_digest(path: str) -> str:
    """sha256 of the file's bytes, hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 24):
            digest.update(chunk)
    return digest.hexdigest()


def gguf_folder(path: str, spec: str) -> str:
    """The Hugging Face folder converted from the GGUF file at `path` (written on first use)."""
    folder = Path(constants.HF_HOME) / "finetune-bench" / "gguf" / f"{Path(path).stem}-{file_digest(path)[:16]}"
    if (folder / "config.json").is_file():
        return str(folder)
    if importlib.util.find_spec("gguf") is None:
        raise BenchError(f"checkpoint {spec} is a GGUF file, which transformers reads with the gguf package: {INSTALL}")
    print(f"note: reading {spec} from GGUF (dequantised to fp32) once; later runs load {folder}", file=sys.stderr)
    staging = folder.with_name(f"{folder.name}.partial-{os.getpid()}")
    directory, name = os.path.split(path)
    try:
        model = AutoModelForCausalLM.from_pretrained(directory, gguf_file=name, dtype=torch.float32)
        tokenizer = AutoTokenizer.from_pretrained(directory, gguf_file=name)
    except (OSError, ValueError, KeyError, RuntimeError) as err:
        raise BenchError(f"cannot read checkpoint {spec} as GGUF: {first_line(err)}") from None
    model.hf_quantizer = None  # dequantised: saving refuses a model that still names a quantizer
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    try:
        os.replace(staging, folder)  # whole or absent: another process may be converting the same file
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
        if not (folder / "config.json").is_file():
            raise
    return str(folder)


def check_gguf(path: str, spec: str) -> None:
    """The file is a whole GGUF file: its header and tensor table read, and its tensors fit in it."""
    if importlib.util.find_spec("gguf") is None:
        raise BenchError(f"checkpoint {spec} is a GGUF file, which transformers reads with the gguf package: {INSTALL}")
    from gguf import GGUFReader  # only GGUF checkpoints need it, and it is an optional extra

    try:
        GGUFReader(path)
    except (ValueError, OSError, IndexError, KeyError) as err:
        raise BenchError(f"checkpoint {spec}: {Path(path).name} is not a whole GGUF file ({first_line(err)}); "
                         "download it again") from None
