"""The lecture's own RNN in numpy with hand-written BPTT, and its notation."""
