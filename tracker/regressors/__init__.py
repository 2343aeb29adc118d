"""The per-class cascaded shape regressors (paper Sec. 3.4) and their stages."""
