"""The gcp profile as an operator meets it: the plan it would issue, the preflight checks, vendor specs."""
