"""The ledger's rules: what each input event does to stock, as plain functions over plain data."""
