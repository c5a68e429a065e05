"""`python -m lead_scoring.cli ...`: the same as `lead-scoring ...` (how the stack's supervisor runs services)."""

from lead_scoring.cli import main

main()
