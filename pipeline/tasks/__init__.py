"""The task registry (registry.py): what differs between detection, segmentation and translation."""
