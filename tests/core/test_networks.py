"""Denoiser factories over MONAI's DiffusionModelUNet."""

import pytest
import torch

from medfusion.networks import CWDM_PUBLISHED, conditional_unet, cwdm_unet, spatial_divisor

TINY = dict(channels=(8, 16), num_res_blocks=1, norm_num_groups=8, num_head_channels=8)


def test_cwdm_unet_channels_and_class_conditioning():
    net = cwdm_unet(**TINY)
    x = torch.randn(2, 32, 8, 8, 8)
    y = net(x, torch.tensor([10, 500]), class_labels=torch.tensor([0, 3]))
    assert y.shape == (2, 8, 8, 8, 8)
    with torch.no_grad():
        for p in net.parameters():
            p.normal_(0, 0.1)
        a = net(x[:1], torch.tensor([10]), class_labels=torch.tensor([0]))
        b = net(x[:1], torch.tensor([10]), class_labels=torch.tensor([2]))
    assert not torch.allclose(a, b)  # the missing-contrast label really reaches the network
    per_contrast = cwdm_unet(num_class_embeds=None, **TINY)
    assert per_contrast(x, torch.tensor([1, 2])).shape == (2, 8, 8, 8, 8)
    assert cwdm_unet(spatial_dims=2, n_conditions=1, **TINY)(torch.randn(1, 8, 8, 8), torch.tensor([1]),
                                                             class_labels=torch.tensor([1])).shape == (1, 4, 8, 8)


def test_published_configuration_size():
    """The published cWDM denoiser has ≈ 81.5 M parameters; MONAI adds a bottleneck attention block."""
    net = cwdm_unet(num_class_embeds=None, **CWDM_PUBLISHED)
    n = sum(p.numel() for p in net.parameters())
    assert 81.0e6 < n < 82.5e6


def test_flash_attention_is_the_same_function():
    torch.manual_seed(0)
    a = cwdm_unet(use_flash_attention=False, **TINY)
    b = cwdm_unet(use_flash_attention=True, **TINY)
    with torch.no_grad():
        for p in a.parameters():
            p.normal_(0, 0.2)
    b.load_state_dict(a.state_dict())
    x, t, c = torch.randn(1, 32, 8, 8, 8), torch.tensor([3]), torch.tensor([1])
    with torch.no_grad():
        ya, yb = a(x, t, class_labels=c), b(x, t, class_labels=c)
    assert ya.abs().mean() > 0.01
    torch.testing.assert_close(ya, yb, rtol=1e-4, atol=1e-5)


def test_spatial_divisor():
    assert spatial_divisor((32, 64, 64)) == 8
    assert spatial_divisor(CWDM_PUBLISHED["channels"]) == 32
    assert spatial_divisor((8, 16), wavelet_levels=0) == 2


def test_conditional_unet_rejects_bad_sizes():
    net = conditional_unet(3, 4, 1, **TINY)
    with pytest.raises(Exception):
        net(torch.randn(1, 4, 7, 8, 8), torch.tensor([1]))
