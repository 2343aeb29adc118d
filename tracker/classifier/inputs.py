"""What the classifier expects of a crop: BGR pixels normalised by these per-channel statistics."""

# Per-channel statistics in OpenCV's BGR order (ImageNet values, reordered).
PIXEL_MEAN_BGR = (0.406, 0.456, 0.485)
PIXEL_STD_BGR = (0.225, 0.224, 0.229)
