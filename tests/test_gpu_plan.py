"""GPUs per judging task from the model's size, and the plan ``make judge DRY_RUN=1`` prints."""

import json

import pytest

from judgelm.inference.gpu_plan import count_params, model_config, plan_replica
from launch.judge import main as judge_main


def test_parameter_counts_of_the_reference_shapes_match_the_published_sizes():
    published = {"7b": 6.74e9, "13b": 13.02e9, "33b": 32.53e9, "70b": 68.98e9}
    for size, n in published.items():
        assert count_params(model_config(size)) == pytest.approx(n, rel=0.005)


@pytest.mark.parametrize("gpu_gb, expected", [(80, [1, 1, 2, 2]), (40, [1, 2, 4, 4]), (141, [1, 1, 1, 2])])
def test_a_replica_gets_the_fewest_gpus_that_hold_its_weights_and_a_useful_batch(gpu_gb, expected):
    plans = [plan_replica(size, gpu_gb) for size in ("7b", "13b", "33b", "70b")]
    assert [p.gpus for p in plans] == expected
    assert all(p.fits and p.batch_tokens >= 16384 for p in plans)


def test_an_operator_choice_of_gpus_is_kept_and_too_few_is_said(tmp_path):
    assert plan_replica("13b", 80, gpus_per_task=4).gpus == 4
    tight = plan_replica("70b", 80, gpus_per_task=1)
    assert not tight.fits and "does not fit on 1 GPUs" in tight.text()
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"model_type": "mistral", "hidden_size": 4096, "intermediate_size": 14336,
                                  "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8,
                                  "vocab_size": 32000, "torch_dtype": "bfloat16"}))
    p = plan_replica(str(config), 24)
    assert (p.dtype, p.gpus, round(p.params / 1e9, 2)) == ("bfloat16", 1, 7.24)


def test_judge_dry_run_prints_the_gpu_plan_per_task_and_creates_nothing(tmp_path, capsys, random_judge):
    for size, gpus in (("7b", 1), ("13b", 1), ("33b", 2), ("70b", 2)):
        argv = ["shards=64", "cluster=a100", f"model.path={size}", "dry_run=true", f"runs_dir={tmp_path}"]
        assert judge_main(argv) == 0
        out = capsys.readouterr().out
        assert "64 tasks: " in out and f"→ {gpus} GPU{'s' * (gpus > 1)} per task" in out
        assert f"64 tasks × {gpus} GPU" in out
    assert judge_main(["shards=2", f"model.path={random_judge}", "dry_run=true", f"runs_dir={tmp_path}"]) == 0
    assert "2 CPU tasks" in capsys.readouterr().out
    assert judge_main(["cluster=a100", "model.path=/no/such/judge", "dry_run=true", f"runs_dir={tmp_path}"]) == 2
    assert "no model config for '/no/such/judge'" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())
