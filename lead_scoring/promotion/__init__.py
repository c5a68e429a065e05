"""Model lifecycle beyond retraining: a challenger in shadow, the comparison that gates its promotion,
promotion and revert, and the full re-score of every open lead by a new champion."""
