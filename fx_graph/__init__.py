"""FX graph utilities shared by the front end and the code generator
(decomposition to aten, fake-tensor metadata, passes) — grows with the Triton backend."""
