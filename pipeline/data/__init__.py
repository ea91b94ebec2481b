"""Data: real loaders (COCO, Cityscapes, WMT/text) and generated tiny data sets in the same layouts."""
