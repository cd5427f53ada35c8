"""Exercise: RVM's GRU-gated transformer core, one step (RVM Sec. 3.2).

Goal: the memory of RVM. The current frame's encoder output e_t queries the
previous state s_{t-1}; a reset gate decides how much of the state to show,
an update gate how much of the state to replace:
    u_t = sigmoid(W_e^u e_t + W_s^u s_{t-1})          update gate
    r_t = sigmoid(W_e^r e_t + W_s^r s_{t-1})          reset gate
    h_t = Tx(q = e_t, kv = r_t * LN(s_{t-1}))         cross- then self-attention
    s_t = (1 - u_t) * s_{t-1} + u_t * h_t,   o_t = s_t
(The paper's equation has kv = r_t * s_{t-1}; the official code layer-normalizes
the state first, and so does this project.)

Time: 20 min.  Check: python exercises/check.py rvm_core
Then train RVM with your core and draw the demo: python exercises/run.py rvm_core
Reference (read it after): rvm.gru_step.
"""
import torch


def gru_step(e, s, w_input_update, w_state_update, w_input_reset, w_state_reset, state_norm, tx):
    """e, s (B, 1+N, D) -> the new state s_t (B, 1+N, D).

    w_input_update = W_e^u, w_state_update = W_s^u, w_input_reset = W_e^r,
    w_state_reset = W_s^r: linear maps (call them: w_input_update(e)).
    state_norm(s) is LN(s); tx(queries, keys_values) is Tx.

    Hint: when u_t is 0 the state must pass through unchanged.
    """
    raise NotImplementedError("gru_step")
