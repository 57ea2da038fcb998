"""A grouped convolution whose kernel gradient XLA's CPU backend computes quickly."""

import functools

import jax
import jax.numpy as jnp


def conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation=None, rhs_dilation=None,
                         dimension_numbers=None, feature_group_count: int = 1, precision=None, **kwargs):
    """`jax.lax.conv_general_dilated` (same arguments, same result); on a CPU, a grouped convolution
    (`feature_group_count` > 1) runs as one convolution per group, concatenated.

    Why: XLA's CPU backend computes the kernel gradient of a grouped convolution slowly. wav2vec2-base's
    positional convolution (768 channels in 16 groups, kernel 128, 8 x 199 frames) took 1791 ms forward
    and backward (1708 ms of it the kernel gradient), 270 ms as 16 convolutions, 430 ms in PyTorch
    (2-core CPU, benchmarks/README.md). Other platforms keep the single grouped convolution.
    """
    conv = functools.partial(jax.lax.conv_general_dilated, window_strides=window_strides, padding=padding,
                             lhs_dilation=lhs_dilation, rhs_dilation=rhs_dilation,
                             dimension_numbers=dimension_numbers, precision=precision, **kwargs)
    if feature_group_count == 1:
        return conv(lhs, rhs)
    numbers = jax.lax.conv_dimension_numbers(lhs.shape, rhs.shape, dimension_numbers)

    def per_group(lhs, rhs):
        pairs = zip(jnp.split(lhs, feature_group_count, axis=numbers.lhs_spec[1]),
                    jnp.split(rhs, feature_group_count, axis=numbers.rhs_spec[0]), strict=True)
        return jnp.concatenate([conv(x, k) for x, k in pairs], axis=numbers.out_spec[1])

    return jax.lax.platform_dependent(lhs, rhs, cpu=per_group,
                                      default=functools.partial(conv, feature_group_count=feature_group_count))
