"""The K-state pose HMM (transitions, fixed-lag decoding) and the temporal stage of the pipeline."""
