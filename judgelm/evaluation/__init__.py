"""Evaluating models with a judge: answers of many models (``answers``), the comparisons to judge (``pairing``),
the statistics of a model leaderboard (``leaderboard``), from a store (``outcomes``, ``results``) to Markdown and
figures (``markdown``, ``figures``), and AlpacaEval's annotation files as imported verdicts (``alpaca_eval``)."""
