"""A CPU engine's process reuses the memory it freed: a tensor allocated again after one was freed costs no fresh
page faults. Each case runs in its own process, as the setting holds for a whole process."""

import json
import subprocess
import sys

import pytest

SETUPS = {
    "default": "kept = None",
    "keep": "from judgelm.inference.cpu_memory import keep_freed_memory\nkept = keep_freed_memory()",
    "engine": ("from judgelm.inference.config import EngineConfig, ModelConfig\n"
               "from judgelm.inference.hf import HFEngine\n"
               "from judgelm.inference.models import load_judge\n"
               "HFEngine(*load_judge(ModelConfig(path=sys.argv[1]))[:3], EngineConfig())\n"
               "kept = None"),
}

PROBE = """
import json, resource, sys
import torch
{setup}
def batch():  # tensors of 16-48 MiB, written in full, then freed, as a prefill's activations are
    xs = [torch.ones((1 << 22) * (k % 3 + 1)) for k in range(6)]
    return sum(x.numel() for x in xs) * 4 // resource.getpagesize()
for _ in range(6):  # until the heap holds a batch's worth of freed blocks
    batch()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
pages = batch() + batch()
print(json.dumps({{"kept": kept, "faults": resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before,
                  "pages": pages}}))
"""


def probe(setup: str, *args: str) -> dict:
    out = subprocess.run([sys.executable, "-c", PROBE.format(setup=SETUPS[setup]), *args], capture_output=True,
                         text=True, check=True)
    return json.loads(out.stdout)


@pytest.fixture(scope="module")
def glibc():
    if not probe("keep")["kept"]:
        pytest.skip("not glibc: nothing to set")


def test_a_freed_tensor_is_reused_without_faulting_its_pages_in_again(glibc):
    default, kept = probe("default"), probe("keep")
    assert default["faults"] > default["pages"] / 2  # the cost this setting exists for
    assert kept["faults"] < kept["pages"] / 20


def test_a_cpu_engine_sets_it_for_its_process(glibc, random_judge):
    result = probe("engine", str(random_judge))
    assert result["faults"] < result["pages"] / 20
