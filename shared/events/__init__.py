"""The wire models of the contract: input events (one module per input topic) and outputs."""
