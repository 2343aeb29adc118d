"""The 68-point conventions, boxes, similarity alignment and face crops (on the CPU and on the device)."""
