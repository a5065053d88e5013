"""Training JudgeLM-style judges: JudgeLM-format records in, a Hugging Face checkpoint the judge loads out.

One job per module:

- ``config``: the typed run config (``configs/train/<size>.yaml`` + overrides)
- ``data``: records -> augmented views -> masked token ids -> micro-batches (a pure function of the step)
- ``tokenizer`` / ``tiny_data``: the tiny judge's BPE and its training set, both built here
- ``model``: the pretrained or from-scratch model, with runtime attention/precision choices
- ``backends``: plain PyTorch (one process) or a DeepSpeed ZeRO-2/3 engine
- ``distributed``: process group from torchrun, submitit/Slurm or nothing; teardown
- ``checkpoint``: atomic save, latest-complete discovery, pruning
- ``adapters``: LoRA / QLoRA through PEFT (adapters, their checkpoint state, adapter and merged exports)
- ``loop``: the training loop; ``export``: the consolidated HF directory; ``mfu``: FLOP accounting
- ``curves``: TensorBoard / W&B; ``validation``: the held-out set judged while training
- ``memory_plan``: trainable parameters and memory per GPU of a config (``DRY_RUN=1``, docs/training.md)
- ``job``: the submitit job (checkpoint on the requeue signal, then requeue); ``__main__``: run in-process

Entry points: ``python -m launch.train`` (submits) and ``python -m judgelm.train`` (runs here / under torchrun).
"""
