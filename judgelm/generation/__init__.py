"""Answer generation: a model's answers to a question set, as a sharded run of its own (``make generate``), and the
answers an evaluation judges (``make evaluate MODELS=…``).

A generation run is laid out like a judging run (``runs/<run>/``: ``config.yaml``, a chunked Zarr store, progress
files, logs) and runs through the same shard loop (``judgelm.judging.shard.run_chunks``), so chunks are committed
whole, a shard resumes per chunk and requeues on USR2, and ``make status`` / ``make resubmit`` work alike. Modules:
``questions`` (the registry of question sets), ``config``, ``chat`` (chat templates, thinking), ``store`` (the
answer store, the only module that knows its layout), ``answer_cache``, ``generate`` (one chunk, every turn),
``shard``, ``run`` (creating a run), ``export`` (FastChat and AlpacaEval files) and ``evaluation`` (the judging
run built from generated answers).
"""
