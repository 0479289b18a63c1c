"""Recommenders, all behind one interface (:class:`~coursepilot.models.base.Recommender`)."""
