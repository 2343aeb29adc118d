"""Training: the classifier's loop, data, augmentation, losses, fitting the regressors, sweeps."""
