"""backends/cupy"""
