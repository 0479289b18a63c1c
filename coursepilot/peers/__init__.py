"""Dynamic peer learning (second paper, sections 3.2, 3.3 and 3.5): learning state and difficulty steering
(``state``), peer groups (``clusters``) that follow each learner over time (``tracking``), and the top-k
peer rankings (``ranking``) whose weights are tuned on validation (``tuning``)."""
