"""The model code that travels to the Hub: configuration, modeling and recurrence kernels, flat in one folder."""
