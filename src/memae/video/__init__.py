"""Video anomaly detection: the decoded-once frame pipeline, clip scoring, evaluation, figures."""
