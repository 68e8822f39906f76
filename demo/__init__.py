"""`make demo`: the sparkshard flow end to end on real data shipped with scikit-learn."""
