"""Label conventions the models define and every data module follows.

Kept free of heavy imports so data code and tests can read them cheaply.
"""

# Token ids of the shared sentencepiece vocabulary (the Transformer's padding, start and end).
PAD, UNK, BOS, EOS = 0, 1, 2, 3

# Segmentation label of pixels no loss or metric counts (Cityscapes' and CamVid's void classes).
IGNORE = 255
