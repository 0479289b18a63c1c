"""Evaluation: the protocol (held-out sets, scoring), the metrics, significance tests, rating calibration
and the report that puts every model on the same splits."""
