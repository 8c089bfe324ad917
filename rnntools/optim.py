"""Stochastic optimizers: small plain classes with one contract.

``update_params(params, grads)`` updates a list of arrays in place from a list
of gradients of the same shapes, as scikit-learn's MLP optimizers do. A
parameter that is a CUDA device array is updated on the device, with its
state moved there by :meth:`map_state` (the estimators do this while fitting
with ``device="cuda"``).
"""

import numpy as np

from ._devices import cuda_kernels, on_device


class _Optimizer:
    def map_state(self, function):
        """Replace every state array ``a`` of parameter ``i`` by
        ``function(i, a)``, e.g. to move it to or from the GPU."""
        for name in self._state_names:
            arrays = getattr(self, name)
            setattr(self, name, [function(i, a) for i, a in enumerate(arrays)])


class SGDOptimizer(_Optimizer):
    """Stochastic gradient descent with (Nesterov) momentum.

    Parameters
    ----------
    params : list of ndarray
        The parameters, updated in place.
    learning_rate : float
    momentum : float, default=0.9
    nesterov : bool, default=True
    """

    def __init__(self, params, learning_rate, momentum=0.9, nesterov=True):
        self.learning_rate = learning_rate
        self.momentum = momentum
        self.nesterov = nesterov
        self.velocities = [np.zeros_like(p) for p in params]

    _state_names = ("velocities",)

    def update_params(self, params, grads):
        """Apply one step: ``v = momentum v - lr g``; ``p += v`` (or Nesterov)."""
        for param, grad, velocity in zip(params, grads, self.velocities, strict=True):
            if on_device(param):
                cuda_kernels().sgd_update(
                    param, grad, velocity, self.learning_rate, self.momentum,
                    self.nesterov,
                )  # fmt: skip
                continue
            velocity *= self.momentum
            velocity -= self.learning_rate * grad
            if self.nesterov:
                param += self.momentum * velocity - self.learning_rate * grad
            else:
                param += velocity


class AdamOptimizer(_Optimizer):
    """Adam (Kingma & Ba, 2015).

    Parameters
    ----------
    params : list of ndarray
        The parameters, updated in place.
    learning_rate : float
    beta_1, beta_2 : float, default=0.9, 0.999
    epsilon : float, default=1e-8
    """

    def __init__(self, params, learning_rate, beta_1=0.9, beta_2=0.999, epsilon=1e-8):
        self.learning_rate = learning_rate
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.t = 0
        self.first_moments = [np.zeros_like(p) for p in params]
        self.second_moments = [np.zeros_like(p) for p in params]

    _state_names = ("first_moments", "second_moments")

    def update_params(self, params, grads):
        """Apply one bias-corrected Adam step."""
        self.t += 1
        step = (
            self.learning_rate
            * np.sqrt(1 - self.beta_2**self.t)
            / (1 - self.beta_1**self.t)
        )
        for param, grad, m, v in zip(
            params, grads, self.first_moments, self.second_moments, strict=True
        ):
            if on_device(param):
                cuda_kernels().adam_update(
                    param, grad, m, v, step, self.beta_1, self.beta_2, self.epsilon
                )
                continue
            if _contiguous(param, grad, m, v):
                from .kernels.cpu import adam_update  # Numba on first use only

                cast = param.dtype.type
                adam_update(
                    param.reshape(-1), grad.reshape(-1), m.reshape(-1),
                    v.reshape(-1), np.float64(step), cast(self.beta_1),
                    cast(1 - self.beta_1), cast(self.beta_2),
                    cast(1 - self.beta_2), cast(self.epsilon),
                )  # fmt: skip
                continue
            m *= self.beta_1
            m += (1 - self.beta_1) * grad
            v *= self.beta_2
            v += (1 - self.beta_2) * grad * grad
            param -= (step * m / (np.sqrt(v) + self.epsilon)).astype(param.dtype)


def _contiguous(param, *others):
    """Whether ``param`` and ``others`` are C-contiguous host arrays of
    ``param``'s dtype (flat views of them are then the arrays themselves)."""
    return all(
        type(a) is np.ndarray and a.dtype == param.dtype and a.flags.c_contiguous
        for a in (param, *others)
    )
