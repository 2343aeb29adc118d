"""Pose classes, membership sets (eq. 6) and what the softmax over them says: landmarks, confidence,
spread, head pose, conditioning on clicks."""
