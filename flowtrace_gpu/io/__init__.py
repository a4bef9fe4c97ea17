"""Reading frames and writing images: one module per format family."""
