"""Reading frames and writing images (internal): one module per format family."""
