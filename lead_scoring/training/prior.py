"""A prior for few-data mode: what the additive model starts from before a team's own leads say otherwise.

Few conversions cannot teach a model what a segment it barely saw is worth (the first 115 X Education
leads hold one "Lead Add Form" lead; the later leads hold hundreds, 97% converted). Vendors answer this with
a global model trained on other customers' leads (Salesforce Einstein below 120 conversions per segment).
This project has no other customers' leads; it has its synthetic CRM generator
(`lead_scoring.crm.synthetic`), whose conversion model is a logistic model with hand-set effects per field
value (e.g. Lead Add Form +2.4, Welingak Website +2.2, Working Professional +2.3 on the log-odds).

`prior_leads("synthetic")` draws `PRIOR_LEADS` of them (fixed seed `PRIOR_SEED`): the additive family fits
its prior on them, in the same basis as the local model (`additive.fit` with `ModelParams.prior ==
"synthetic"`), then fits the team's own leads with an L2 penalty on the *difference* from the prior
(Bayesian logistic regression with the prior's coefficients as the mean; `prior_c` is the prior's variance:
smaller trusts the prior more). With few leads the model stays near the prior; with many the data override it.

What the prior knows, honestly: the generator's effects were written (2026-11-23) to "follow the X Education
export" from the dataset's public analyses, i.e. from the whole public dataset, not from the leads a team
has. It is an informed prior about an online-course lead funnel, not an independent one: a team whose
funnel differs gets a prior that is wrong for it at first, which is why the prior-shrunk model competes
with the prior-free stumps on the team's own out-of-fold leads and is chosen only when it ranks them better
(docs/training.md has the measurements, on a development split and then on the test split).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pandas as pd

from lead_scoring.contract import LABEL
from lead_scoring.crm.synthetic import generate_leads
from lead_scoring.training.features import features_frame

PRIORS = ("", "synthetic")  # "" none
PRIOR_LEADS = 20_000
PRIOR_SEED = 101


@lru_cache(maxsize=1)
def _synthetic() -> tuple[pd.DataFrame, np.ndarray]:
    leads = generate_leads(PRIOR_LEADS, seed=PRIOR_SEED)
    labelled = leads[leads[LABEL].notna()]
    return features_frame(labelled).reset_index(drop=True), labelled[LABEL].astype(bool).astype(int).to_numpy()


def prior_leads(name: str) -> tuple[pd.DataFrame, np.ndarray]:
    """The model-input frame and labels the prior named `name` is fitted on (copies: callers may modify)."""
    if name != "synthetic":
        raise ValueError(f"unknown prior {name!r}; choose one of: {', '.join(p for p in PRIORS if p)}")
    frame, y = _synthetic()
    return frame.copy(), y.copy()
