"""Model providers behind one contract (`ModelProvider`), selected by `Provider`."""
