"""Studies of attribution, run on the platform's own model versions (commands print tables and
save CSV, JSON and PNG reports under TDA_STATE_DIR/reports/<command>-<UTC time>/).

- `self_influence` (seed 000 section 3.2, `manage.py tda_self_influence`): Train-to-Train.
- `compare` (seed 000 section 3.3, `manage.py tda_compare`): Test-to-Train against similarity
  baselines, and the fast path against exact scores.
- `audit` (seed 003 sections 5.1 and 5.2, `manage.py audit_robustness`, `audit_model`).
- `context`: the model version under study (its generator, training items and TDA target),
  shared with the product's jobs so a study never recomputes a Fisher or theta0 losses.
- `reports`: report directories and files, and the listing the staff pages show.
"""
