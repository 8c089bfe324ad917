"""
Moving weights to and from PyTorch
==================================

rnntools keeps parameters in exactly the layout of
``torch.nn.LSTM(batch_first=True).state_dict()``: load a PyTorch LSTM's
weights into rnntools (and back) and get the same outputs. Skips with a
message when torch is not installed.

Run: ``python examples/torch_weights.py``
"""

import sys

import numpy as np

from rnntools.functional import rnn_forward

try:
    import torch
except ImportError:
    print("torch is not installed: nothing to compare with (pip install torch).")
    sys.exit(0)

# %%
# A PyTorch LSTM: 2 layers, bidirectional, batch first.
torch.manual_seed(0)
lstm = torch.nn.LSTM(5, 16, num_layers=2, bidirectional=True, batch_first=True)
x = np.random.default_rng(0).standard_normal((4, 12, 5)).astype(np.float32)

# %%
# Its state_dict, as NumPy arrays, *is* an rnntools params dict.
params = {name: value.detach().numpy() for name, value in lstm.state_dict().items()}
ours, (h_n, c_n), _ = rnn_forward(x, params, "lstm", bidirectional=True)

with torch.no_grad():
    theirs, (torch_h_n, torch_c_n) = lstm(torch.from_numpy(x))
print("max |output difference| :", np.abs(ours - theirs.numpy()).max())
print("max |h_n difference|    :", np.abs(h_n - torch_h_n.numpy()).max())
assert np.allclose(ours, theirs.numpy(), atol=1e-5)

# %%
# And back: rnntools parameters load into a PyTorch module unchanged.
lstm.load_state_dict({name: torch.from_numpy(value) for name, value in params.items()})
print("loaded back into torch.nn.LSTM: ok")
