"""Every built-in mechanism's options and their defaults (mmcv's names where they overlap).

Torch-free, so configs and the CLI validate options without importing torch.
"""

DEFAULTS_1D = dict(
    num_heads=8,
    position_embedding_dim=-1,
    position_magnitude=1.0,
    wave_length=10000.0,
    causal=False,
    spatial_range=-1,
    dropout=0.0,
    impl="auto",
)

DEFAULTS_2D = dict(
    num_heads=8,
    kv_stride=2,
    q_stride=1,
    spatial_range=-1,
    position_embedding_dim=-1,
    position_magnitude=1.0,
    wave_length=1000.0,
    impl="auto",
)

DEFAULTS_DEFORM_2D = dict(kernel_size=3, stride=1, dilation=1, deform_groups=1, bias=False)

DEFAULTS_DEFORM_1D = dict(kernel_size=3, deform_groups=1, bias=True, causal=False)

DEFAULTS_DYNAMIC_1D = dict(num_heads=8, kernel_size=7, weight_dropout=0.0, causal=False)

DEFAULTS_DYNAMIC_2D = dict(num_heads=8, kernel_size=3, weight_dropout=0.0, stride=1, dilation=1)
